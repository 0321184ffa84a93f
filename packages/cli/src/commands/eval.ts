import { stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { DEFAULT_MODEL_DIR, encodePng, loadModelDir, ModelDirError, type ModelDir } from '@pixelflow/formats';
import { OnnxModelError, type OnnxModel } from '@pixelflow/onnx';
import { sample, SamplingError, type SampleResult } from '@pixelflow/sampler';
import {
  GenerationError,
  imageSeed,
  parseGenerationRequest,
  resolveGeneration,
  type ModelManifest,
  type ResolvedGeneration,
} from '@pixelflow/schemas';
import { CliError, UsageError } from '../errors.ts';
import {
  argmaxRow,
  Classifier,
  CLASSIFIER_CHANNELS,
  CLASSIFIER_RESOLUTION,
  ClassifierError,
  loadClassifierDir,
  type ClassifierDir,
} from '../eval/classifier.ts';
import { frechetDistance, gaussianOf } from '../eval/frechet.ts';
import { composeGrid } from '../eval/grid.ts';
import { checkFolder, createFolder, errorCode, writeAll } from '../files.ts';
import { flagMessage, numeric, parseFlags, parseThreads, stepsValue } from '../flags.ts';
import { abortOnSignals, loadOnnxModel } from '../interrupt.ts';
import { bar, formatDuration, StatusLine } from '../progress.ts';
import { repoRoot } from '../repo.ts';
import { EVAL_SUMMARY } from './summaries.ts';

// `pixelflow eval`: how good a class-conditional model is, and how that changes with CFG and
// steps. For every (cfg, steps) combination it samples the same images with the product's own
// sampler (`sample` over OnnxModel, the service's code path), scores them with an independent
// classifier trained on real digits only, and reports class accuracy and the Fréchet distance
// between the classifier's features of the generated images and of held-out real digits.
//
// Reproducible: image j of class c (j = 0 .. per-class - 1) always has seed
// (seed + j K + c) mod 2^32 for K classes, whatever the combination, so rows of the table differ
// only by their sampling parameters (and the same arguments give the same table, timings aside).

const COMMAND = 'eval';

export const DEFAULT_CLASSIFIER_DIR = join(repoRoot, 'models/digit-classifier');
export const DEFAULT_PER_CLASS = 50;
export const MAX_PER_CLASS = 10_000;
/** Columns of the --grid image: the first this many samples of each class. */
export const GRID_COLUMNS = 10;

export const EVAL_USAGE = `Usage: pixelflow eval [options]

${EVAL_SUMMARY}.
Samples --per-class images of every class for every combination of --cfg and
--steps with the service's sampler, and scores them with a digit classifier
trained on real digits only (models/digit-classifier).

Options:
  --model DIR          model folder (default: models/pixelflow-mnist, our
                       shipped MNIST model)
  --classifier DIR     classifier folder (default: models/digit-classifier)
  --per-class N        images of each class per combination, 1..${MAX_PER_CLASS}
                       (default ${DEFAULT_PER_CLASS})
  --cfg X,X,...        guidance scales to compare, each 1..25 (default: the
                       model's)
  --steps SPEC;SPEC    Euler steps settings to compare, separated by ';'; each
                       is N (every stage) or N,N,... (one per stage), 1..100
                       (default: the model's)
  --solver S           euler or dopri5 (adaptive; ignores --steps and --shift)
  --shift X            noise shift, 1..100 (default: the model's)
  --seed N             0..4294967295 (default 0); image j of class c uses
                       seed + j * classes + c, in every combination
  --grid FILE.png      also write the first combination's images as a grid:
                       one row per class, up to ${GRID_COLUMNS} columns
  --threads N          onnxruntime threads per operator (default: one per CPU)
  --json               print a JSON summary on stdout instead of the tables
  -h, --help           show this help

Every combination of --cfg and --steps is one row of the table: accuracy
(argmax of the classifier's logits is the requested class), the weakest class,
the Fréchet distance to the held-out real digits' features (compare it only
between runs with the same --per-class), images per second of sampling and
model calls per image. Progress goes to stderr. Exit status: 0 done, 2 bad
input, 130 interrupted (nothing written), 1 anything else.
`;

export interface EvalArgs {
  model: string;
  classifier: string;
  perClass: number;
  /** The flags as JSON-ish values for the generation request; undefined: the model's default. */
  cfg: (number | string)[] | undefined;
  steps: ReturnType<typeof stepsValue>[] | undefined;
  /** The --steps text of each setting, for messages. */
  stepsText: string[] | undefined;
  solver: string | undefined;
  shift: number | string | undefined;
  seed: number | string;
  grid: string | undefined;
  threads: number | undefined;
  json: boolean;
}

function usage(message: string): UsageError {
  return new UsageError(message, { command: COMMAND });
}

/** Parses `eval`'s arguments; `'help'` when help was asked for. Throws UsageError. */
export function parseEvalArgs(args: readonly string[]): EvalArgs | 'help' {
  const parsed = parseFlags(COMMAND, args, {
    model: { type: 'string' },
    classifier: { type: 'string' },
    'per-class': { type: 'string' },
    cfg: { type: 'string' },
    steps: { type: 'string' },
    solver: { type: 'string' },
    shift: { type: 'string' },
    seed: { type: 'string' },
    grid: { type: 'string' },
    threads: { type: 'string' },
    json: { type: 'boolean', default: false },
  });
  if (parsed === 'help') return 'help';
  const { values, positionals } = parsed;
  if (positionals.length > 0) throw usage(`unexpected argument '${positionals[0]}' (options take the form --name value)`);
  for (const flag of ['model', 'classifier', 'grid'] as const) {
    const value = values[flag];
    if (value !== undefined && value.trim() === '') throw usage(`--${flag} must not be empty`);
  }

  let perClass = DEFAULT_PER_CLASS;
  const perClassText = values['per-class'];
  if (perClassText !== undefined) {
    perClass = Number(perClassText);
    if (!/^\d+$/.test(perClassText.trim()) || perClass < 1 || perClass > MAX_PER_CLASS) {
      throw usage(`--per-class must be an integer from 1 to ${MAX_PER_CLASS}, not '${perClassText}'`);
    }
  }
  const stepsText = values.steps?.split(';');

  return {
    model: values.model ?? DEFAULT_MODEL_DIR,
    classifier: values.classifier ?? DEFAULT_CLASSIFIER_DIR,
    perClass,
    cfg: values.cfg?.split(',').map(numeric),
    steps: stepsText?.map(stepsValue),
    stepsText,
    solver: values.solver,
    shift: values.shift === undefined ? undefined : numeric(values.shift),
    seed: values.seed === undefined ? 0 : numeric(values.seed),
    grid: values.grid,
    threads: parseThreads(values.threads, COMMAND),
    json: values.json,
  };
}

/** One row of the table: the sampling parameters it runs with. */
export interface Combination {
  cfgScale: number;
  /** Euler steps per stage; null under Dopri5, which picks its own. */
  steps: number[] | null;
  solver: ResolvedGeneration['solver'];
  noiseShift: number;
}

export interface EvalPlan {
  combinations: Combination[];
  seed: number;
}

/**
 * Every (cfg, steps) combination, cfg-major, each checked against the model as a generation
 * request would be (same ranges, same messages, in flag terms), and the seed. Under Dopri5 the
 * steps settings collapse into one: it ignores them, as `generate` does.
 */
export function resolvePlan(args: EvalArgs, manifest: ModelManifest): EvalPlan {
  const resolveOne = (request: Record<string, unknown>, stepsText: string | undefined): ResolvedGeneration => {
    try {
      const parsed = parseGenerationRequest({ class: 0, num_images: 1, ...request });
      return resolveGeneration(parsed, manifest, () => 0);
    } catch (error) {
      if (!(error instanceof GenerationError)) throw error;
      const message = flagMessage(error);
      // With several --steps settings, say which one is wrong.
      const several = (args.stepsText?.length ?? 0) > 1;
      if (several && stepsText !== undefined && error.field[0] === 'steps') {
        throw usage(message.replace(/^--steps/, `--steps ${JSON.stringify(stepsText)}`));
      }
      throw usage(message);
    }
  };
  const common: Record<string, unknown> = { seed: args.seed };
  if (args.solver !== undefined) common['solver'] = args.solver;
  if (args.shift !== undefined) common['noise_shift'] = args.shift;
  const cfgs = args.cfg ?? [undefined];
  const steps = args.steps ?? [undefined];

  const combinations: Combination[] = [];
  let seed = 0;
  for (const cfg of cfgs) {
    for (const [i, step] of steps.entries()) {
      const request = { ...common, ...(cfg !== undefined && { cfg_scale: cfg }), ...(step !== undefined && { steps: step }) };
      const resolved = resolveOne(request, args.stepsText?.[i]);
      seed = resolved.seed;
      const dopri5 = resolved.solver === 'dopri5';
      if (dopri5 && i > 0) continue;
      combinations.push({
        cfgScale: resolved.cfg_scale,
        steps: dopri5 ? null : resolved.steps,
        solver: resolved.solver,
        noiseShift: resolved.noise_shift,
      });
    }
  }
  return { combinations, seed };
}

/** The seed of batch `batch`: its image c (class c) gets seed + batch K + c, mod 2^32. */
export function batchSeed(seed: number, batch: number, classes: number): number {
  return imageSeed(seed, batch * classes);
}

/** Refuses a model that makes images the classifier cannot score. */
export function checkCompatible(manifest: ModelManifest, classifier: ClassifierDir): void {
  const { architecture, resolution, name } = manifest;
  const classes = classifier.info.class_names.length;
  const source = join(classifier.dir, 'classifier.json');
  if (architecture.num_classes !== classes) {
    throw usage(`the model ${JSON.stringify(name)} has ${architecture.num_classes} classes but ${source} has ${classes}: it cannot score this model`);
  }
  if (resolution !== CLASSIFIER_RESOLUTION || architecture.in_channels !== CLASSIFIER_CHANNELS || architecture.out_channels !== CLASSIFIER_CHANNELS) {
    throw usage(
      `the model ${JSON.stringify(name)} makes ${resolution}x${resolution} images with ${architecture.out_channels} channels, ` +
        `but the classifier scores ${CLASSIFIER_RESOLUTION}x${CLASSIFIER_RESOLUTION} RGB (${CLASSIFIER_CHANNELS} channels)`,
    );
  }
}

export interface CombinationResult {
  combination: Combination;
  images: number;
  /** Fraction of images whose predicted class is the requested one. */
  accuracy: number;
  /** Per class label. */
  perClassAccuracy: number[];
  weakestClass: number;
  frechetDistance: number;
  /** Sampling only (the classifier not included). */
  imagesPerSecond: number;
  /** Model calls each image went through (one call serves the whole batch, both CFG halves). */
  modelCallsPerImage: number;
  samplingMs: number;
  classifierMs: number;
}

function percent(fraction: number): string {
  return `${(100 * fraction).toFixed(1)}%`;
}

function formatSteps(c: Combination): string {
  return c.steps === null ? 'adaptive' : c.steps.join(',');
}

function formatRate(value: number): string {
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

function formatCalls(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

/** A markdown table with its columns padded, so that it reads well in a terminal too. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[], rightAligned: readonly boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, 3, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((cell, i) => (rightAligned[i] ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (rightAligned[i] ? `${'-'.repeat(w + 1)}:` : `${'-'.repeat(w + 2)}`)).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** The two tables: one row per combination, then per-class accuracies. */
export function formatTables(results: readonly CombinationResult[], classNames: readonly string[]): string {
  const main = markdownTable(
    ['cfg', 'steps', 'solver', 'accuracy', 'weakest class', 'Fréchet distance', 'images/s', 'model calls/image'],
    results.map((r) => [
      String(r.combination.cfgScale),
      formatSteps(r.combination),
      r.combination.solver,
      percent(r.accuracy),
      `${classNames[r.weakestClass] ?? r.weakestClass} (${percent(r.perClassAccuracy[r.weakestClass] ?? 0)})`,
      r.frechetDistance.toFixed(2),
      formatRate(r.imagesPerSecond),
      formatCalls(r.modelCallsPerImage),
    ]),
    [true, false, false, true, false, true, true, true],
  );
  const labels = classNames.map((_, k) => String(k));
  const perClass = markdownTable(
    ['cfg', 'steps', ...labels],
    results.map((r) => [String(r.combination.cfgScale), formatSteps(r.combination), ...r.perClassAccuracy.map((a) => (100 * a).toFixed(0))]),
    [true, false, ...labels.map(() => true)],
  );
  const legend = classNames.map((name, k) => `${k} = ${name}`).join(', ');
  return `${main}\n\nAccuracy per class (%; ${legend}):\n\n${perClass}\n`;
}

/** Progress on stderr: a bar redrawn in place on a terminal; otherwise a line per tenth of each combination. */
class EvalProgress {
  private readonly screen = new StatusLine(process.stderr);
  private readonly total: number;
  private lastTenth = 0;

  constructor(total: number) {
    this.total = total;
  }

  line(text: string): void {
    this.screen.line(`pixelflow eval: ${text}`);
  }

  status(text: string): void {
    this.screen.status(text);
  }

  startCombination(): void {
    this.lastTenth = 0;
  }

  batch(index: number, c: Combination, batchesDone: number, batches: number, imagesDone: number, elapsedMs: number): void {
    const label = `[${index + 1}/${this.total}] cfg ${c.cfgScale}, steps ${formatSteps(c)}`;
    const eta = formatDuration(((batches - batchesDone) * elapsedMs) / batchesDone);
    if (this.screen.tty) {
      this.screen.status(`${bar(batchesDone / batches)} ${imagesDone} images | ${label} | ${formatDuration(elapsedMs)}, ETA ${eta}`);
      return;
    }
    const tenth = Math.floor((10 * batchesDone) / batches);
    if (tenth > this.lastTenth && batchesDone < batches) {
      this.lastTenth = tenth;
      this.line(`${label}: ${imagesDone} images, ${formatDuration(elapsedMs)}, about ${eta} to go`);
    }
  }

  clear(): void {
    this.screen.clear();
  }
}

interface RunContext {
  manifest: ModelManifest;
  onnx: OnnxModel;
  classifier: Classifier;
  perClass: number;
  seed: number;
  signal: AbortSignal;
  progress: EvalProgress;
}

/** One batch: one image of every class, in label order; image c has seed (seed + c) mod 2^32. */
async function sampleBatch(context: RunContext, combination: Combination, seed: number): Promise<SampleResult> {
  const { manifest, onnx, signal } = context;
  try {
    return await sample({
      model: onnx,
      manifest,
      classLabels: Array.from({ length: manifest.architecture.num_classes }, (_, k) => k),
      solver: combination.solver,
      cfgScale: combination.cfgScale,
      noiseShift: combination.noiseShift,
      steps: combination.steps ?? manifest.defaults.steps,
      seed,
      signal,
    });
  } catch (error) {
    if (signal.aborted) throw signal.reason as Error;
    if (error instanceof SamplingError || error instanceof OnnxModelError) {
      throw new CliError(`sampling failed: ${error.message}`, 1, { command: COMMAND, cause: error });
    }
    throw error;
  }
}

/**
 * One untimed batch with one Euler step per stage, at the largest CFG (so that both batch sizes
 * run), through the classifier too: onnxruntime's first run at each shape allocates and plans,
 * which would otherwise slow the first row's images/s alone.
 */
async function warmUp(context: RunContext, combinations: readonly Combination[]): Promise<void> {
  const cfgScale = Math.max(...combinations.map((c) => c.cfgScale));
  const steps = context.manifest.stages.map(() => 1);
  const result = await sampleBatch(context, { cfgScale, steps, solver: 'euler', noiseShift: 1 }, context.seed);
  await context.classifier.classify(result.images, context.manifest.architecture.num_classes);
}

/** Samples and scores one combination; `keep(batch, result)` sees every batch (the grid takes its images). */
async function runCombination(
  context: RunContext,
  index: number,
  combination: Combination,
  keep: (batch: number, result: SampleResult) => void,
): Promise<CombinationResult> {
  const { manifest, classifier, perClass, seed, signal, progress } = context;
  const classes = manifest.architecture.num_classes;
  const featureDim = classifier.dir.info.feature_dim;
  const images = perClass * classes;
  const features = new Float32Array(images * featureDim);
  const correct = new Array<number>(classes).fill(0);
  let samplingMs = 0;
  let classifierMs = 0;
  let modelCalls = 0;
  const started = performance.now();
  progress.startCombination();

  for (let batch = 0; batch < perClass; batch++) {
    const result = await sampleBatch(context, combination, batchSeed(seed, batch, classes));
    samplingMs += result.elapsedMs;
    modelCalls += result.modelCalls;
    keep(batch, result);

    const classifyStarted = performance.now();
    const scored = await classifier.classify(result.images, classes);
    classifierMs += performance.now() - classifyStarted;
    for (let k = 0; k < classes; k++) {
      if (argmaxRow(scored.logits, k, classes) === k) correct[k] = (correct[k] ?? 0) + 1;
    }
    features.set(scored.features, batch * classes * featureDim);
    signal.throwIfAborted();
    progress.batch(index, combination, batch + 1, perClass, (batch + 1) * classes, performance.now() - started);
  }

  const perClassAccuracy = correct.map((n) => n / perClass);
  let weakestClass = 0;
  perClassAccuracy.forEach((a, k) => {
    if (a < (perClassAccuracy[weakestClass] ?? 1)) weakestClass = k;
  });
  const generated = gaussianOf(features, images, featureDim);
  return {
    combination,
    images,
    accuracy: correct.reduce((a, b) => a + b, 0) / images,
    perClassAccuracy,
    weakestClass,
    frechetDistance: frechetDistance(generated, classifier.dir.heldout),
    imagesPerSecond: images / (samplingMs / 1000),
    modelCallsPerImage: modelCalls / perClass,
    samplingMs,
    classifierMs,
  };
}

async function loadModelFolder(args: EvalArgs): Promise<ModelDir> {
  try {
    return await loadModelDir(args.model);
  } catch (error) {
    if (error instanceof ModelDirError) throw usage(error.message);
    throw error;
  }
}

async function loadClassifierFolder(args: EvalArgs): Promise<ClassifierDir> {
  try {
    return await loadClassifierDir(args.classifier);
  } catch (error) {
    if (error instanceof ClassifierError) throw usage(error.message);
    throw error;
  }
}

/** --grid FILE: its folder must be creatable and FILE not a folder. Returns the absolute path. */
async function checkGridPath(path: string): Promise<string> {
  const abs = resolve(path);
  await checkFolder('--grid', dirname(abs), COMMAND);
  const stats = await stat(abs).catch((error: unknown) =>
    errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR' ? null : Promise.reject(error),
  );
  if (stats?.isDirectory()) throw usage(`--grid ${path} is a folder; give a file name such as ${join(path, 'grid.png')}`);
  return abs;
}

function describeCombination(c: Combination): string {
  return c.solver === 'euler' ? `cfg ${c.cfgScale}, steps ${formatSteps(c)}, shift ${c.noiseShift}, euler` : `cfg ${c.cfgScale}, dopri5`;
}

export async function evalCommand(argv: readonly string[]): Promise<number> {
  const args = parseEvalArgs(argv);
  if (args === 'help') {
    process.stdout.write(EVAL_USAGE);
    return 0;
  }
  const started = performance.now();

  // Everything that can be wrong with the input is found here, before either model loads.
  const model = await loadModelFolder(args);
  const { manifest } = model;
  const classifierDir = await loadClassifierFolder(args);
  checkCompatible(manifest, classifierDir);
  const { combinations, seed } = resolvePlan(args, manifest);
  const gridPath = args.grid === undefined ? undefined : await checkGridPath(args.grid);

  const classes = manifest.architecture.num_classes;
  const classNames = classifierDir.info.class_names;
  const progress = new EvalProgress(combinations.length);
  const controller = new AbortController();
  const stopListening = abortOnSignals(controller, COMMAND, 'nothing written');
  let onnx: OnnxModel | undefined;
  let classifier: Classifier | undefined;
  try {
    progress.status(`loading ${model.modelPath} and ${classifierDir.modelPath} ...`);
    const threads = args.threads === undefined ? {} : { intraOpNumThreads: args.threads };
    onnx = await loadOnnxModel(model, { provider: 'cpu', ...threads }, controller.signal, COMMAND);
    try {
      classifier = await Classifier.load(classifierDir, threads);
    } catch (error) {
      if (error instanceof ClassifierError) throw usage(error.message);
      throw error;
    }
    controller.signal.throwIfAborted();
    if (combinations[0]?.solver === 'dopri5' && (args.steps !== undefined || args.shift !== undefined)) {
      progress.line('note: dopri5 chooses its own steps and ignores --steps and --shift');
    }
    progress.line(
      `${manifest.name}: ${combinations.length} ${combinations.length === 1 ? 'combination' : 'combinations'} x ` +
        `${args.perClass * classes} images (${args.perClass} per class), seed ${seed}; classifier ${percent(classifierDir.info.heldout_accuracy)} ` +
        `on ${classifierDir.info.heldout_count} held-out digits`,
    );

    const gridColumns = Math.min(args.perClass, GRID_COLUMNS);
    const gridCells: Uint8Array[][] = Array.from({ length: classes }, () => []);
    const side = manifest.resolution;
    const context: RunContext = { manifest, onnx, classifier, perClass: args.perClass, seed, signal: controller.signal, progress };
    progress.status('warming up ...');
    await warmUp(context, combinations);
    const results: CombinationResult[] = [];
    for (const [index, combination] of combinations.entries()) {
      progress.line(`[${index + 1}/${combinations.length}] ${describeCombination(combination)}`);
      const keep = (batch: number, result: SampleResult): void => {
        if (index !== 0 || gridPath === undefined || batch >= gridColumns) return;
        const bytes = side * side * 3;
        for (let k = 0; k < classes; k++) gridCells[k]?.push(result.images.slice(k * bytes, (k + 1) * bytes));
      };
      const result = await runCombination(context, index, combination, keep);
      results.push(result);
      progress.line(
        `[${index + 1}/${combinations.length}] accuracy ${percent(result.accuracy)}, Fréchet distance ${result.frechetDistance.toFixed(2)}, ` +
          `${formatRate(result.imagesPerSecond)} images/s, ${formatCalls(result.modelCallsPerImage)} model calls/image ` +
          `(${formatDuration(result.samplingMs + result.classifierMs)})`,
      );
    }

    const first = combinations[0] as Combination;
    const parameters = {
      model: manifest.name,
      model_weights_sha256: manifest.source.weights_sha256,
      per_class: args.perClass,
      seed,
      cfg_scale: first.cfgScale,
      steps: first.steps,
      solver: first.solver,
      noise_shift: first.noiseShift,
      rows: 'classes in label order',
      columns: `samples 0..${gridColumns - 1} of each class (sample j of class c has seed seed + j * ${classes} + c)`,
    };
    if (gridPath !== undefined) {
      const grid = composeGrid(gridCells, side);
      const png = encodePng(grid.rgb, grid.width, grid.height, { parameters: JSON.stringify(parameters), Software: 'pixelflow-serve' });
      await createFolder('--grid', dirname(gridPath), COMMAND);
      await writeAll(dirname(gridPath), [{ name: basename(gridPath), data: png }], controller.signal);
      progress.line(`wrote ${gridPath} (${grid.width}x${grid.height}: ${classes} classes x ${gridColumns} samples, ${describeCombination(first)})`);
    }

    if (args.json) {
      const summary = {
        model: { name: manifest.name, dir: model.dir, weights_sha256: manifest.source.weights_sha256, resolution: manifest.resolution },
        classifier: {
          dir: classifierDir.dir,
          heldout_accuracy: classifierDir.info.heldout_accuracy,
          heldout_count: classifierDir.info.heldout_count,
          feature_dim: classifierDir.info.feature_dim,
        },
        class_names: classNames,
        per_class: args.perClass,
        images_per_combination: args.perClass * classes,
        batch_size: classes,
        seed,
        provider: onnx.provider,
        combinations: results.map((r) => ({
          cfg_scale: r.combination.cfgScale,
          steps: r.combination.steps,
          solver: r.combination.solver,
          noise_shift: r.combination.noiseShift,
          images: r.images,
          accuracy: r.accuracy,
          per_class_accuracy: r.perClassAccuracy,
          weakest_class: { label: r.weakestClass, name: classNames[r.weakestClass] ?? null, accuracy: r.perClassAccuracy[r.weakestClass] },
          frechet_distance: r.frechetDistance,
          images_per_second: r.imagesPerSecond,
          model_calls_per_image: r.modelCallsPerImage,
          sampling_ms: Math.round(r.samplingMs),
          classifier_ms: Math.round(r.classifierMs),
        })),
        grid: gridPath === undefined ? null : { path: gridPath, parameters },
        total_ms: Math.round(performance.now() - started),
      };
      process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    } else {
      process.stdout.write(formatTables(results, classNames));
    }
    return 0;
  } finally {
    progress.clear();
    stopListening();
    await onnx?.dispose().catch(() => {});
    await classifier?.release().catch(() => {});
  }
}
