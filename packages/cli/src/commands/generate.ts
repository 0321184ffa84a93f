import { createHash, randomInt } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  DEFAULT_MODEL_DIR,
  encodeGeneratedPngs,
  loadModelDir,
  ModelDirError,
  NpyError,
  readNpy,
  writeNpy,
  type ModelDir,
} from '@pixelflow/formats';
import { OnnxModelError, type OnnxModel, type OnnxProvider } from '@pixelflow/onnx';
import {
  noiseShapes,
  sample,
  sampleOptionsFor,
  SamplingError,
  type NoiseSet,
  type SampleResult,
  type Shape4,
} from '@pixelflow/sampler';
import {
  GenerationError,
  imageSeed,
  MAX_SEED,
  parseGenerationRequest,
  resolveGeneration,
  type ModelManifest,
  type ResolvedGeneration,
} from '@pixelflow/schemas';
import { CliError, UsageError } from '../errors.ts';
import { checkFolder, createFolder, errorCode, npyDtypeName, pngFileName, pngFileNames, refuseToReplace, writeAll } from '../files.ts';
import { flagMessage, GENERATION_FLAGS, parseFlags, parseThreads, requestFromFlags } from '../flags.ts';
import { abortOnSignals, loadOnnxModel } from '../interrupt.ts';
import { batchFactors, formatDuration, GenerationProgress } from '../progress.ts';
import { GENERATE_SUMMARY } from './summaries.ts';

// `pixelflow generate`: one generation on this machine, no service needed. It
// checks everything it can before loading the model (flags, the model folder,
// class and steps against pixelflow.json, noise files, output folders), so bad
// input costs no model load; then samples, and writes PNGs that carry every
// parameter, byte-identical for the same arguments.

const COMMAND = 'generate';

export const GENERATE_USAGE = `Usage: pixelflow generate [--model DIR] [options]

${GENERATE_SUMMARY}.
Defaults come from the model's pixelflow.json (the released model: 4 images,
Euler, 10 steps per stage, CFG 4, shift 1; our MNIST model: its card says).

Options:
  --model DIR          converted model folder (pixelflow.json + model.onnx);
                       default: models/pixelflow-mnist, the embedded MNIST model
  --class N|NAME       class index (0-based) or class name; a name matches
                       exactly, then ignoring case (default: the model's)
  --count N            images, 1..8
  --seed N             seed of image 0, 0..4294967295; image i uses seed + i
                       (default: drawn at random and printed)
  --cfg X              classifier-free guidance scale, 1..25
  --shift X            noise shift, 1..100 (Euler only)
  --steps N|N,N,...    Euler steps, 1..100: one number for every stage, or one
                       per stage
  --solver S           euler or dopri5 (adaptive; ignores --steps and --shift)
  --provider P         cpu or cuda (default cpu)
  --threads N          onnxruntime threads per operator (default: one per CPU)
  --out DIR            where the PNGs go, created if missing (default: .);
                       files are pixelflow-<seed>-<i>.png
  --force              replace PNGs of those names already in --out (without
                       it, the command refuses before loading the model)
  --noise DIR          use the noise in DIR instead of drawing it from the seed:
                       noise_stage0.npy and noise_block_<k>.npy, float32
  --dump DIR           also write the noise used and each stage's final state
                       (stage_<k>.npy) as .npy files into DIR
  --json               print a JSON summary on stdout instead of the file list
  -h, --help           show this help

Examples:
  pixelflow generate --class "digit 7" --count 4 --seed 1 --out out/
  pixelflow generate --model models/pixelflow-xl --class 207 --cfg 4 --steps 10
  pixelflow generate --class 3 --solver dopri5 --json > summary.json

Each PNG holds its parameters as JSON in an iTXt chunk named "parameters".
Progress goes to stderr. Exit status: 0 done, 2 bad input (nothing written),
130 interrupted (no images written), 1 anything else.
`;

const PROVIDERS: readonly OnnxProvider[] = ['cpu', 'cuda'];

export interface GenerateArgs {
  model: string;
  /** The generation request as JSON-ish values: numbers where the flag looked numeric, strings otherwise. */
  request: Record<string, unknown>;
  provider: OnnxProvider;
  threads: number | undefined;
  out: string;
  noise: string | undefined;
  dump: string | undefined;
  json: boolean;
  force: boolean;
}

function usage(message: string): UsageError {
  return new UsageError(message, { command: COMMAND });
}

/** Parses `generate`'s arguments; `'help'` when help was asked for. Throws UsageError. */
export function parseGenerateArgs(args: readonly string[]): GenerateArgs | 'help' {
  const parsed = parseFlags(COMMAND, args, {
    model: { type: 'string' },
    ...GENERATION_FLAGS,
    provider: { type: 'string', default: 'cpu' },
    threads: { type: 'string' },
    out: { type: 'string', default: '.' },
    noise: { type: 'string' },
    dump: { type: 'string' },
    json: { type: 'boolean', default: false },
    force: { type: 'boolean', default: false },
  });
  if (parsed === 'help') return 'help';
  const { values, positionals } = parsed;
  if (positionals.length > 0) throw usage(`unexpected argument '${positionals[0]}' (options take the form --name value)`);

  const provider = values.provider as OnnxProvider;
  if (!PROVIDERS.includes(provider)) throw usage(`--provider must be cpu or cuda, not '${values.provider}'`);
  const threads = parseThreads(values.threads, COMMAND);
  for (const [flag, dir] of [
    ['--out', values.out],
    ['--noise', values.noise],
    ['--dump', values.dump],
  ] as const) {
    if (dir !== undefined && dir.trim() === '') throw usage(`${flag} must not be empty`);
  }

  return {
    model: values.model ?? DEFAULT_MODEL_DIR,
    request: requestFromFlags(values),
    provider,
    threads,
    out: values.out,
    noise: values.noise,
    dump: values.dump,
    json: values.json,
    force: values.force,
  };
}

/** The request resolved against the model; GenerationError becomes a one-line usage error in flag terms. */
export function resolveRequest(args: GenerateArgs, manifest: ModelManifest, drawSeed: () => number): ResolvedGeneration {
  try {
    const request = parseGenerationRequest({ class: manifest.defaults.class_label, ...args.request });
    return resolveGeneration(request, manifest, drawSeed);
  } catch (error) {
    if (error instanceof GenerationError) throw usage(flagMessage(error));
    throw error;
  }
}

/** The noise file names, in NoiseSet order: stage 0, then the block noise of stages 1..S-1. */
export function noiseFileNames(stageCount: number): string[] {
  return Array.from({ length: stageCount }, (_, k) => (k === 0 ? 'noise_stage0.npy' : `noise_block_${k}.npy`));
}

function describeShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Reads --noise DIR and checks every file against the model's stages and the image count. */
async function readNoise(dir: string, manifest: ModelManifest, count: number): Promise<NoiseSet> {
  const shapes = noiseShapes(manifest, count);
  const names = noiseFileNames(shapes.length);
  const stats = await stat(dir).catch(() => null);
  if (!stats?.isDirectory()) throw usage(`--noise ${dir} is not a folder`);
  const tensors: Float32Array[] = [];
  for (const [k, name] of names.entries()) {
    const path = join(dir, name);
    const expected = shapes[k] as Shape4;
    const wanted = `float32 ${describeShape(expected)}`;
    let array;
    try {
      array = await readNpy(path);
    } catch (error) {
      if (errorCode(error) === 'ENOENT') throw usage(`--noise: ${path} not found (expected ${wanted})`);
      if (error instanceof NpyError) throw usage(`--noise: ${error.message} (expected ${wanted})`);
      throw usage(`--noise: cannot read ${path}: ${(error as Error).message}`);
    }
    const sameShape = array.shape.length === 4 && array.shape.every((side, i) => side === expected[i]);
    if (array.dtype !== '<f4' || !sameShape) {
      const found = `${npyDtypeName(array.dtype)} ${describeShape(array.shape)}`;
      throw usage(`--noise: ${path} must be ${wanted} for ${count} images, found ${found}`);
    }
    const data = array.data as Float32Array;
    if (!data.every(Number.isFinite)) throw usage(`--noise: ${path} contains NaN or infinite values`);
    tensors.push(data);
  }
  return { stage0: tensors[0] as Float32Array, blocks: tensors.slice(1) };
}

/** One PNG per image, each with its parameters, named by seed and index. */
export function encodeImages(
  result: Pick<SampleResult, 'images' | 'width' | 'height'>,
  generation: ResolvedGeneration,
  manifest: ModelManifest,
  externalNoise: boolean,
): { name: string; data: Buffer }[] {
  return encodeGeneratedPngs(result, generation, manifest, externalNoise).map((data, i) => ({
    name: pngFileName(generation.seed, i),
    data,
  }));
}

async function writeDump(dir: string, manifest: ModelManifest, count: number, result: SampleResult): Promise<void> {
  const shapes = noiseShapes(manifest, count);
  const noise = [result.noise.stage0, ...result.noise.blocks];
  const names = noiseFileNames(shapes.length);
  for (const [k, shape] of shapes.entries()) {
    await writeNpy(join(dir, names[k] as string), { dtype: '<f4', shape: [...shape], data: noise[k] as Float32Array });
    await writeNpy(join(dir, `stage_${k}.npy`), { dtype: '<f4', shape: [...shape], data: result.stageEnds[k] as Float32Array });
  }
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function describeGeneration(g: ResolvedGeneration, seedDrawn: boolean, externalNoise: boolean): string {
  const euler = g.solver === 'euler' ? `, steps ${g.steps.join(',')}, shift ${g.noise_shift}` : '';
  const seed = externalNoise ? `seed ${g.seed} (noise from --noise)` : `seed ${g.seed}${seedDrawn ? ' (random)' : ''}`;
  return `class ${g.class_label} ${JSON.stringify(g.class_name)}, ${g.num_images} ${g.num_images === 1 ? 'image' : 'images'}, ${seed}, ${g.solver}${euler}, cfg ${g.cfg_scale}`;
}

export async function generateCommand(argv: readonly string[]): Promise<number> {
  const args = parseGenerateArgs(argv);
  if (args === 'help') {
    process.stdout.write(GENERATE_USAGE);
    return 0;
  }
  const started = performance.now();

  // Everything that can be wrong with the input is found here, before the model loads.
  let model: ModelDir;
  try {
    model = await loadModelDir(args.model);
  } catch (error) {
    if (error instanceof ModelDirError) throw usage(error.message);
    throw error;
  }
  const { manifest } = model;
  let seedDrawn = false;
  const generation = resolveRequest(args, manifest, () => {
    seedDrawn = true;
    return randomInt(0, MAX_SEED + 1);
  });
  const noise = args.noise === undefined ? undefined : await readNoise(resolve(args.noise), manifest, generation.num_images);
  const outDir = await checkFolder('--out', args.out, COMMAND);
  if (!args.force) await refuseToReplace(outDir, pngFileNames(generation.seed, generation.num_images), COMMAND);
  const dumpDir = args.dump === undefined ? undefined : await checkFolder('--dump', args.dump, COMMAND);

  const stderr = process.stderr;
  const progress = new GenerationProgress(stderr, {
    resolutions: manifest.stages.map((s) => s.resolution),
    batchFactors: batchFactors(manifest.scheduler.cfg_stage_weights.map((w) => 1 + (generation.cfg_scale - 1) * w)),
    steps: generation.solver === 'euler' ? generation.steps : null,
  });
  const controller = new AbortController();
  const stopListening = abortOnSignals(controller, COMMAND, 'no images written');
  let onnx: OnnxModel | undefined;
  try {
    const loadStarted = performance.now();
    progress.status(`loading ${model.modelPath} on ${args.provider} ...`);
    onnx = await loadOnnxModel(
      model,
      { provider: args.provider, ...(args.threads !== undefined && { intraOpNumThreads: args.threads }) },
      controller.signal,
      COMMAND,
    );
    const loadMs = performance.now() - loadStarted;
    controller.signal.throwIfAborted();
    // Only now, so that a model that does not load still fails in one line.
    progress.line(`pixelflow generate: ${describeGeneration(generation, seedDrawn, noise !== undefined)}`);
    if (generation.solver === 'dopri5' && (args.request['steps'] !== undefined || args.request['noise_shift'] !== undefined)) {
      progress.line('pixelflow generate: note: dopri5 chooses its own steps and ignores --steps and --shift');
    }

    let result: SampleResult;
    try {
      result = await sample({
        ...sampleOptionsFor(generation, manifest),
        model: onnx,
        ...(noise && { noise }),
        signal: controller.signal,
        onStep: (p) => progress.step(p),
        onStage: (end) => progress.stageEnd(end.stage),
      });
    } catch (error) {
      if (controller.signal.aborted) throw controller.signal.reason as Error;
      if (error instanceof SamplingError || error instanceof OnnxModelError) {
        throw new CliError(`sampling failed: ${error.message}`, 1, { command: COMMAND, cause: error });
      }
      throw error;
    }

    const writeStarted = performance.now();
    const files = encodeImages(result, generation, manifest, noise !== undefined);
    await createFolder('--out', outDir, COMMAND);
    const paths = await writeAll(outDir, files, controller.signal);
    const writeMs = performance.now() - writeStarted;
    if (dumpDir !== undefined) {
      await createFolder('--dump', dumpDir, COMMAND);
      await writeDump(dumpDir, manifest, generation.num_images, result);
    }

    const side = `${result.width}x${result.height}`;
    progress.line(
      `pixelflow generate: ${files.length} ${files.length === 1 ? 'image' : 'images'} ${side} in ` +
        `${formatDuration(result.elapsedMs)} (${result.modelCalls} model calls on ${onnx.provider}; ` +
        `model loaded in ${formatDuration(loadMs)})`,
    );
    if (args.json) {
      const summary = {
        files: paths.map((path, i) => ({
          path,
          sha256: sha256((files[i] as { data: Buffer }).data),
          image_index: i,
          image_seed: imageSeed(generation.seed, i),
        })),
        parameters: generation,
        seed_drawn: seedDrawn,
        external_noise: noise !== undefined,
        dump: dumpDir ?? null,
        model: {
          name: manifest.name,
          dir: model.dir,
          dtype: manifest.dtype,
          weights_sha256: manifest.source.weights_sha256,
        },
        resolution: manifest.resolution,
        provider: onnx.provider,
        session_cache: onnx.sessionCache,
        model_calls: result.modelCalls,
        // Where the time went (bench/cpu.ts reads these): loading the model, sampling (of which
        // `model_call_ms` inside onnxruntime's run), encoding and writing the PNGs, and all of it
        // from the command's start (after the process and its imports started).
        elapsed_ms: Math.round(result.elapsedMs),
        model_call_ms: Math.round(onnx.stats().runMs),
        load_ms: Math.round(loadMs),
        write_ms: Math.round(writeMs),
        total_ms: Math.round(performance.now() - started),
      };
      process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    } else {
      process.stdout.write(paths.map((path) => `${path}\n`).join(''));
    }
    return 0;
  } finally {
    progress.clear();
    stopListening();
    await onnx?.dispose().catch(() => {});
  }
}
