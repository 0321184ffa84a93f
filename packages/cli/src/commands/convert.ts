import { resolve } from 'node:path';
import { ManifestDefaults } from '@pixelflow/schemas';
import { CliError, UsageError } from '../errors.ts';
import { numeric, parseFlags } from '../flags.ts';
import { describeTried, findPython, installHint, pythonEnv, runPython } from '../python.ts';
import { CONVERT_SUMMARY } from './summaries.ts';

const COMMAND = 'convert';

// `pixelflow convert` is a thin wrapper: the conversion itself (load the
// PyTorch checkpoint, export ONNX, write pixelflow.json) is Python, in
// pytorch/pixelflow/convert.py. This side checks the command line, finds a
// Python that can run it, and hands over.

export const CONVERT_USAGE = `Usage: pixelflow convert <checkpoint-dir> <out-dir> [options]

${CONVERT_SUMMARY}.
<checkpoint-dir> holds config.yaml and model.pt (a PyTorch state dict);
<out-dir> receives model.onnx and pixelflow.json.

Options:
  --dtype fp32|fp16    precision of the weights in the ONNX file (default fp32);
                       inputs and outputs stay float32 either way
  --attention A        plain (default: MatMul + Softmax, runs anywhere) or multihead:
                       onnxruntime's fused com.microsoft.MultiHeadAttention (flash and
                       memory-efficient attention on CUDA; a CPU kernel too)
  --name NAME          model name recorded in pixelflow.json
  --class-names FILE   class names, one per line, in label order
  --default-cfg G      the model's default CFG scale, 1..25 (default 4, the demo's)
  --default-steps N    the model's default steps per stage: N, or one per stage
                       (N,N,N,N), each 1..100 (default 10)
  --force              overwrite <out-dir> if it already exists
  -h, --help           show this help

Environment:
  PIXELFLOW_PYTHON     the Python to run the converter with; it needs
                       torch>=1.13, onnx, pyyaml and numpy. Otherwise python3
                       on PATH, then /usr/bin/python3, is used.
`;

const DTYPES = ['fp32', 'fp16'] as const;
export type WeightDtype = (typeof DTYPES)[number];
const ATTENTIONS = ['plain', 'multihead'] as const;
export type AttentionExport = (typeof ATTENTIONS)[number];

export interface ConvertOptions {
  checkpointDir: string;
  outDir: string;
  dtype: WeightDtype;
  attention: AttentionExport;
  name?: string;
  classNames?: string;
  /** Sampling defaults written to pixelflow.json instead of the demo's. */
  defaultCfg?: number;
  defaultSteps?: number[];
  force: boolean;
}

function isDtype(value: string): value is WeightDtype {
  return (DTYPES as readonly string[]).includes(value);
}

/** Parses `convert`'s arguments; `'help'` when help was asked for. Throws UsageError. */
export function parseConvertArgs(args: readonly string[]): ConvertOptions | 'help' {
  const parsed = parseFlags(COMMAND, args, {
    dtype: { type: 'string', default: 'fp32' },
    attention: { type: 'string', default: 'plain' },
    name: { type: 'string' },
    'class-names': { type: 'string' },
    'default-cfg': { type: 'string' },
    'default-steps': { type: 'string' },
    force: { type: 'boolean', default: false },
  });
  if (parsed === 'help') return 'help';
  const { values, positionals } = parsed;

  const [checkpointDir, outDir, ...extra] = positionals;
  if (checkpointDir === undefined || outDir === undefined) {
    throw new UsageError('missing <checkpoint-dir> and <out-dir> (see pixelflow convert --help)', { command: COMMAND });
  }
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`, { command: COMMAND });
  if (!isDtype(values.dtype)) {
    throw new UsageError(`--dtype must be fp32 or fp16, not '${values.dtype}'`, { command: COMMAND });
  }
  const attention = ATTENTIONS.find((a) => a === values.attention);
  if (attention === undefined) {
    throw new UsageError(`--attention must be plain or multihead, not '${values.attention}'`, { command: COMMAND });
  }
  if (values.name !== undefined && values.name.trim() === '') throw new UsageError('--name must not be empty', { command: COMMAND });
  // The ranges are pixelflow.json's own (ManifestDefaults): what convert accepts, the manifest holds.
  const cfg = values['default-cfg'] === undefined ? undefined : ManifestDefaults.shape.cfg_scale.safeParse(numeric(values['default-cfg']));
  if (cfg?.success === false) {
    throw new UsageError(`--default-cfg must be a number from 1 to 25, not '${values['default-cfg']}'`, { command: COMMAND });
  }
  const steps = values['default-steps'] === undefined ? undefined : ManifestDefaults.shape.steps.safeParse(values['default-steps'].split(',').map(numeric));
  if (steps?.success === false) {
    throw new UsageError(
      `--default-steps must be an integer from 1 to 100, or one per stage separated by commas, not '${values['default-steps']}'`,
      { command: COMMAND },
    );
  }

  return {
    checkpointDir,
    outDir,
    dtype: values.dtype,
    attention,
    force: values.force,
    ...(values.name !== undefined && { name: values.name }),
    ...(values['class-names'] !== undefined && { classNames: values['class-names'] }),
    ...(cfg?.data !== undefined && { defaultCfg: cfg.data }),
    ...(steps?.data !== undefined && { defaultSteps: steps.data }),
  };
}

/** Arguments for `python -m pixelflow.convert`. */
export function converterArgs(options: ConvertOptions): string[] {
  // Absolute paths: a relative path starting with "-" would read as an option,
  // and the converter's messages then name exactly which folder it means.
  const args = ['-m', 'pixelflow.convert', resolve(options.checkpointDir), resolve(options.outDir)];
  args.push('--dtype', options.dtype);
  if (options.attention !== 'plain') args.push('--attention', options.attention);
  if (options.name !== undefined) args.push('--name', options.name);
  if (options.classNames !== undefined) args.push('--class-names', resolve(options.classNames));
  if (options.defaultCfg !== undefined) args.push('--default-cfg', String(options.defaultCfg));
  if (options.defaultSteps !== undefined) args.push('--default-steps', options.defaultSteps.join(','));
  if (options.force) args.push('--force');
  return args;
}

export async function convertCommand(args: readonly string[]): Promise<number> {
  const options = parseConvertArgs(args);
  if (options === 'help') {
    process.stdout.write(CONVERT_USAGE);
    return 0;
  }

  const { python, tried } = await findPython();
  if (!python) {
    throw new CliError(`no Python with PyTorch and onnx found (tried: ${describeTried(tried)}). ${installHint()}`, 2);
  }
  const explicit = tried.find((probe) => probe.candidate.explicit);
  if (explicit && !explicit.ok) {
    // The user asked for a specific Python; say so when we could not honour it.
    process.stderr.write(
      `pixelflow: warning: ${explicit.candidate.label} is not usable (${explicit.problem}); using ${python.executable}\n`,
    );
  }
  try {
    return await runPython(python.executable, converterArgs(options), { env: pythonEnv() });
  } catch (error) {
    throw new CliError(`could not run ${python.executable}: ${(error as Error).message}`);
  }
}
