import { createHash, randomInt } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  encodePng,
  loadModelDir,
  ModelDirError,
  noiseShapes,
  NpyError,
  OnnxModel,
  OnnxModelError,
  readNpy,
  sample,
  SamplingError,
  writeNpy,
  type ModelDir,
  type NoiseSet,
  type OnnxProvider,
  type SampleResult,
  type Shape4,
} from '@pixelflow/sampler';
import {
  GenerationError,
  imageParameters,
  imageSeed,
  MAX_SEED,
  parseGenerationRequest,
  resolveGeneration,
  type ModelManifest,
  type ResolvedGeneration,
} from '@pixelflow/schemas';
import { CliError, UsageError } from '../errors.ts';
import { batchFactors, formatDuration, GenerationProgress } from '../progress.ts';

// `pixelflow generate`: one generation on this machine, no service needed. It
// checks everything it can before loading the model (flags, the model folder,
// class and steps against pixelflow.json, noise files, output folders), so bad
// input costs no model load; then samples, and writes PNGs that carry every
// parameter, byte-identical for the same arguments.

const COMMAND = 'generate';

export const GENERATE_SUMMARY = 'Generate images of a class with a converted model, as PNG files';

export const GENERATE_USAGE = `Usage: pixelflow generate --model DIR [options]

${GENERATE_SUMMARY}.
Defaults come from the model's pixelflow.json (the released model: 4 images,
Euler, 10 steps per stage, CFG 4, shift 1).

Options:
  --model DIR          converted model folder (pixelflow.json + model.onnx);
                       required until the embedded default model ships
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
  --threads N          onnxruntime threads per operator (default: one per core)
  --out DIR            where the PNGs go, created if missing (default: .);
                       files are pixelflow-<seed>-<i>.png, replaced if present
  --noise DIR          use the noise in DIR instead of drawing it from the seed:
                       noise_stage0.npy and noise_block_<k>.npy, float32
  --dump DIR           also write the noise used and each stage's final state
                       (stage_<k>.npy) as .npy files into DIR
  --json               print a JSON summary on stdout instead of the file list
  -h, --help           show this help

Each PNG holds its parameters as JSON in an iTXt chunk named "parameters".
Progress goes to stderr. Exit status: 0 done, 2 bad input (nothing written),
130 interrupted (no images written), 1 anything else.
`;

const PROVIDERS: readonly OnnxProvider[] = ['cpu', 'cuda'];

/** Request fields as the user knows them: by their flags. */
const FLAGS: Record<string, string> = {
  class: '--class',
  num_images: '--count',
  seed: '--seed',
  cfg_scale: '--cfg',
  noise_shift: '--shift',
  steps: '--steps',
  solver: '--solver',
};

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
}

function usage(message: string): UsageError {
  return new UsageError(message, { command: COMMAND });
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/**
 * A flag's text as a number when it reads as one; otherwise the text itself,
 * which the request schema then rejects with the flag's rule ("must be an
 * integer from 1 to 8, not "abc""), so every range is stated in one place.
 */
function numeric(text: string): number | string {
  const trimmed = text.trim();
  return NUMBER.test(trimmed) ? Number(trimmed) : text;
}

/** Node's parseArgs messages are long and mention APIs; say what the user did instead. */
function usageErrorFrom(error: unknown): UsageError {
  const { code, message } = error as { code?: string; message: string };
  const option = /'(-[^' ]+)/.exec(message)?.[1];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && option) {
    return usage(`unknown option ${option} (see pixelflow generate --help)`);
  }
  return usage(message.split('\n')[0] ?? message);
}

/** Parses `generate`'s arguments; `'help'` when help was asked for. Throws UsageError. */
export function parseGenerateArgs(args: readonly string[]): GenerateArgs | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      strict: true,
      options: {
        model: { type: 'string' },
        class: { type: 'string' },
        count: { type: 'string' },
        seed: { type: 'string' },
        cfg: { type: 'string' },
        shift: { type: 'string' },
        steps: { type: 'string' },
        solver: { type: 'string' },
        provider: { type: 'string', default: 'cpu' },
        threads: { type: 'string' },
        out: { type: 'string', default: '.' },
        noise: { type: 'string' },
        dump: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    throw usageErrorFrom(error);
  }
  const { values, positionals } = parsed;
  if (values.help) return 'help';
  if (positionals.length > 0) throw usage(`unexpected argument '${positionals[0]}' (options take the form --name value)`);
  if (values.model === undefined) {
    throw usage('--model DIR is required: the embedded default model is not shipped yet (it arrives in a later issue)');
  }

  const provider = values.provider as OnnxProvider;
  if (!PROVIDERS.includes(provider)) throw usage(`--provider must be cpu or cuda, not '${values.provider}'`);
  let threads: number | undefined;
  if (values.threads !== undefined) {
    threads = Number(values.threads);
    if (!/^\d+$/.test(values.threads.trim()) || threads < 1 || threads > 1024) {
      throw usage(`--threads must be an integer from 1 to 1024, not '${values.threads}'`);
    }
  }
  for (const [flag, dir] of [
    ['--out', values.out],
    ['--noise', values.noise],
    ['--dump', values.dump],
  ] as const) {
    if (dir !== undefined && dir.trim() === '') throw usage(`${flag} must not be empty`);
  }

  const request: Record<string, unknown> = {};
  if (values.class !== undefined) request['class'] = numeric(values.class);
  if (values.count !== undefined) request['num_images'] = numeric(values.count);
  if (values.seed !== undefined) request['seed'] = numeric(values.seed);
  if (values.cfg !== undefined) request['cfg_scale'] = numeric(values.cfg);
  if (values.shift !== undefined) request['noise_shift'] = numeric(values.shift);
  if (values.steps !== undefined) {
    request['steps'] = values.steps.includes(',') ? values.steps.split(',').map(numeric) : numeric(values.steps);
  }
  if (values.solver !== undefined) request['solver'] = values.solver;

  return {
    model: values.model,
    request,
    provider,
    threads,
    out: values.out,
    noise: values.noise,
    dump: values.dump,
    json: values.json,
  };
}

/** `steps has 3 entries ...` -> `--steps has 3 entries ...`; `steps[2] must ...` -> `--steps entry 3 must ...`. */
function flagMessage(error: GenerationError): string {
  const [field, ...rest] = error.field;
  if (typeof field !== 'string' || !Object.hasOwn(FLAGS, field)) return error.message;
  const entry = typeof rest[0] === 'number' ? ` entry ${rest[0] + 1}` : '';
  return `${FLAGS[field]}${entry} ${error.reason}`;
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

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Checks, without creating anything, that `dir` is a folder or can be created
 * as one: a file in its way or an unwritable parent fails now, not after a
 * long sampling run. Returns the absolute path.
 */
async function checkFolder(flag: string, dir: string): Promise<string> {
  const abs = resolve(dir);
  let probe = abs;
  for (;;) {
    // ENOTDIR: a file sits somewhere on the way; the walk up finds and names it.
    const stats = await stat(probe).catch((error: unknown) =>
      errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR' ? null : Promise.reject(error),
    );
    if (stats) {
      if (!stats.isDirectory()) {
        throw usage(probe === abs ? `${flag} ${dir} exists and is not a folder` : `${flag} ${dir}: ${probe} is not a folder`);
      }
      try {
        await access(probe, constants.W_OK);
      } catch {
        throw usage(`${flag} ${dir}: ${probe} is not writable`);
      }
      return abs;
    }
    const parent = dirname(probe);
    if (parent === probe) return abs;
    probe = parent;
  }
}

async function createFolder(flag: string, dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    throw new CliError(`${flag}: cannot create ${dir}: ${(error as Error).message}`, 1, { command: COMMAND });
  }
}

/** The noise file names, in NoiseSet order: stage 0, then the block noise of stages 1..S-1. */
export function noiseFileNames(stageCount: number): string[] {
  return Array.from({ length: stageCount }, (_, k) => (k === 0 ? 'noise_stage0.npy' : `noise_block_${k}.npy`));
}

function describeShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

const NPY_DTYPE_NAMES: Record<string, string> = { '<f4': 'float32', '<f8': 'float64', '<i8': 'int64', '<i4': 'int32', '|u1': 'uint8', '|b1': 'bool' };

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
      const found = `${NPY_DTYPE_NAMES[array.dtype] ?? array.dtype} ${describeShape(array.shape)}`;
      throw usage(`--noise: ${path} must be ${wanted} for ${count} images, found ${found}`);
    }
    const data = array.data as Float32Array;
    if (!data.every(Number.isFinite)) throw usage(`--noise: ${path} contains NaN or infinite values`);
    tensors.push(data);
  }
  return { stage0: tensors[0] as Float32Array, blocks: tensors.slice(1) };
}

export function pngFileName(seed: number, index: number): string {
  return `pixelflow-${seed}-${String(index).padStart(2, '0')}.png`;
}

/** One PNG per image, each with its parameters; a pure function of its inputs. */
export function encodeImages(
  result: Pick<SampleResult, 'images' | 'width' | 'height'>,
  generation: ResolvedGeneration,
  manifest: ModelManifest,
  externalNoise: boolean,
): { name: string; png: Buffer }[] {
  const { width, height } = result;
  const pixels = width * height * 3;
  return Array.from({ length: generation.num_images }, (_, i) => {
    const parameters = imageParameters(generation, manifest, i, externalNoise);
    const png = encodePng(result.images.subarray(i * pixels, (i + 1) * pixels), width, height, {
      parameters: JSON.stringify(parameters),
      Software: 'pixelflow-serve',
    });
    return { name: pngFileName(generation.seed, i), png };
  });
}

/**
 * Writes every file under a temporary name first and renames them into place
 * only when all are written and no interrupt came, so an interrupted run never
 * leaves a truncated or partial set of PNGs.
 */
async function writeAll(dir: string, files: readonly { name: string; png: Buffer }[], signal: AbortSignal): Promise<string[]> {
  const temporary = files.map((file) => join(dir, `.${file.name}.${process.pid}.tmp`));
  try {
    await Promise.all(files.map((file, i) => writeFile(temporary[i] as string, file.png)));
    signal.throwIfAborted();
    const paths: string[] = [];
    for (const [i, file] of files.entries()) {
      const path = join(dir, file.name);
      await rename(temporary[i] as string, path);
      paths.push(path);
    }
    return paths;
  } finally {
    await Promise.all(temporary.map((path) => rm(path, { force: true })));
  }
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

/** Aborts `controller` on Ctrl-C (exit 130) or SIGTERM (143); a second Ctrl-C exits at once. */
function abortOnSignals(controller: AbortController): () => void {
  const handlers = (['SIGINT', 'SIGTERM'] as const).map((signal) => {
    const status = signal === 'SIGINT' ? 130 : 143;
    const handler = (): void => {
      if (controller.signal.aborted) process.exit(status);
      controller.abort(new CliError(`interrupted by ${signal}; no images written`, status, { command: COMMAND }));
    };
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  return () => {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  };
}

/** Resolves with the model, or rejects with the abort reason as soon as the signal fires. */
async function loadModel(model: ModelDir, args: GenerateArgs, signal: AbortSignal): Promise<OnnxModel> {
  const loading = OnnxModel.load(model, {
    provider: args.provider,
    ...(args.threads !== undefined && { intraOpNumThreads: args.threads }),
  });
  const aborted = new Promise<never>((_, reject) => {
    const onAbort = (): void => {
      // The session cannot stop loading; release it whenever it is done.
      loading.then((m) => m.dispose()).catch(() => {});
      reject(signal.reason as Error);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([loading, aborted]);
  } catch (error) {
    if (error instanceof OnnxModelError) throw usage(error.message);
    throw error;
  }
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
  const outDir = await checkFolder('--out', args.out);
  const dumpDir = args.dump === undefined ? undefined : await checkFolder('--dump', args.dump);

  const stderr = process.stderr;
  const progress = new GenerationProgress(stderr, {
    resolutions: manifest.stages.map((s) => s.resolution),
    batchFactors: batchFactors(manifest.scheduler.cfg_stage_weights.map((w) => 1 + (generation.cfg_scale - 1) * w)),
    steps: generation.solver === 'euler' ? generation.steps : null,
  });
  const controller = new AbortController();
  const stopListening = abortOnSignals(controller);
  let onnx: OnnxModel | undefined;
  try {
    const loadStarted = performance.now();
    progress.status(`loading ${model.modelPath} on ${args.provider} ...`);
    onnx = await loadModel(model, args, controller.signal);
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
        model: onnx,
        manifest,
        classLabels: new Array<number>(generation.num_images).fill(generation.class_label),
        solver: generation.solver,
        cfgScale: generation.cfg_scale,
        noiseShift: generation.noise_shift,
        steps: generation.steps,
        seed: generation.seed,
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

    const files = encodeImages(result, generation, manifest, noise !== undefined);
    await createFolder('--out', outDir);
    const paths = await writeAll(outDir, files, controller.signal);
    if (dumpDir !== undefined) {
      await createFolder('--dump', dumpDir);
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
          sha256: sha256((files[i] as { png: Buffer }).png),
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
        model_calls: result.modelCalls,
        elapsed_ms: Math.round(result.elapsedMs),
        load_ms: Math.round(loadMs),
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
