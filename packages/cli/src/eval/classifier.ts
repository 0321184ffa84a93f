import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { NpyError, readNpy } from '@pixelflow/formats';
import { defaultIntraOpThreads } from '@pixelflow/onnx';
import { formatIssues } from '@pixelflow/schemas';
import type { InferenceSession, Tensor } from 'onnxruntime-node';
import { z } from 'zod';
import { errorCode, npyDtypeName } from '../files.ts';
import type { Gaussian } from './frechet.ts';

// The independent judge of `pixelflow eval`: a digit classifier trained by us on real digits only
// (pytorch/pixelflow/digit_classifier.py), shipped as a folder:
//   classifier.onnx                  image float32 [B,3,32,32] in [-1,1] -> logits [B,K], features [B,F]
//   heldout_features_mean.npy        float64 [F]     mean of `features` over held-out real digits
//   heldout_features_cov.npy         float64 [F,F]   their covariance (N - 1 divisor)
//   classifier.json                  what it is and how well it does (schema below)
// It runs in this thread: the CLI has no event loop to keep free, and one small CNN per batch is
// nothing next to the sampler's model, which keeps its own worker thread. onnxruntime-node is
// imported only when a classifier loads, so the other commands never load its native binding.

export const CLASSIFIER_FILES = {
  info: 'classifier.json',
  model: 'classifier.onnx',
  mean: 'heldout_features_mean.npy',
  cov: 'heldout_features_cov.npy',
} as const;

/** The classifier sees what the sampler's last stage makes: 32x32 RGB. */
export const CLASSIFIER_RESOLUTION = 32;
export const CLASSIFIER_CHANNELS = 3;

/** classifier.json. Fields the trainer adds beyond these (epochs, seed, ...) are allowed and ignored. */
export const ClassifierInfo = z.object({
  heldout_accuracy: z.number().min(0).max(1),
  heldout_count: z.int().min(2),
  train_count: z.int().min(1),
  feature_dim: z.int().min(1).max(4096),
  class_names: z.array(z.string().min(1)).min(2),
  input: z.string().min(1),
  outputs: z.object({ logits: z.string().min(1), features: z.string().min(1) }),
});

export type ClassifierInfo = z.infer<typeof ClassifierInfo>;

/** The folder is missing, incomplete or inconsistent, or its model does not load; one-line message. */
export class ClassifierError extends Error {
  override name = 'ClassifierError';
}

export interface ClassifierDir {
  /** Absolute path of the folder. */
  dir: string;
  info: ClassifierInfo;
  modelPath: string;
  /** The held-out real digits' feature statistics. */
  heldout: Gaussian;
}

async function requireFile(path: string): Promise<void> {
  const stats = await stat(path).catch((error: unknown) => (errorCode(error) === 'ENOENT' ? null : Promise.reject(error)));
  if (!stats) throw new ClassifierError(`${path} not found`);
  if (!stats.isFile()) throw new ClassifierError(`${path} is not a file`);
}

/** Reads and validates classifier.json; throws ClassifierError. */
export async function readClassifierInfo(dir: string): Promise<ClassifierInfo> {
  const path = join(dir, CLASSIFIER_FILES.info);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') throw new ClassifierError(`${path} not found: ${dir} is not a classifier folder`);
    throw new ClassifierError(`${path}: cannot read: ${(error as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ClassifierError(`${path}: invalid JSON: ${(error as Error).message}`);
  }
  const parsed = ClassifierInfo.safeParse(json);
  if (!parsed.success) throw new ClassifierError(`${path}: ${formatIssues(parsed.error.issues)}`);
  const info = parsed.data;
  const { input, outputs } = info;
  if (outputs.logits === outputs.features) throw new ClassifierError(`${path}: outputs.logits and outputs.features name the same output '${outputs.logits}'`);
  if (input === outputs.logits || input === outputs.features) throw new ClassifierError(`${path}: input '${input}' is also named as an output`);
  return info;
}

async function readFloat64(path: string, shape: readonly number[]): Promise<Float64Array> {
  await requireFile(path);
  let array;
  try {
    array = await readNpy(path);
  } catch (error) {
    if (error instanceof NpyError) throw new ClassifierError(error.message);
    throw new ClassifierError(`${path}: cannot read: ${(error as Error).message}`);
  }
  const sameShape = array.shape.length === shape.length && array.shape.every((side, i) => side === shape[i]);
  if (array.dtype !== '<f8' || !sameShape) {
    throw new ClassifierError(`${path} must be float64 [${shape.join(', ')}] (feature_dim ${shape[0]}), found ${npyDtypeName(array.dtype)} [${array.shape.join(', ')}]`);
  }
  const data = array.data as Float64Array;
  if (!data.every(Number.isFinite)) throw new ClassifierError(`${path} contains NaN or infinite values`);
  return data;
}

/**
 * Reads and checks a classifier folder without loading its model: classifier.json, the held-out
 * statistics (dtype, shapes against feature_dim, finite, a symmetric covariance), and that
 * classifier.onnx is there. Throws ClassifierError with a one-line message.
 */
export async function loadClassifierDir(dir: string): Promise<ClassifierDir> {
  const abs = resolve(dir);
  const stats = await stat(abs).catch((error: unknown) => (errorCode(error) === 'ENOENT' ? null : Promise.reject(error)));
  if (!stats) throw new ClassifierError(`classifier folder not found: ${abs}`);
  if (!stats.isDirectory()) throw new ClassifierError(`classifier folder is not a folder: ${abs}`);
  const info = await readClassifierInfo(abs);
  const f = info.feature_dim;
  const mean = await readFloat64(join(abs, CLASSIFIER_FILES.mean), [f]);
  const covPath = join(abs, CLASSIFIER_FILES.cov);
  const cov = await readFloat64(covPath, [f, f]);
  for (let i = 0; i < f; i++) {
    if (!((cov[i * f + i] as number) >= 0)) throw new ClassifierError(`${covPath}: diagonal entry ${i} is negative: not a covariance`);
    for (let j = i + 1; j < f; j++) {
      const a = cov[i * f + j] as number;
      const b = cov[j * f + i] as number;
      if (Math.abs(a - b) > 1e-9 * Math.max(1, Math.abs(a), Math.abs(b))) {
        throw new ClassifierError(`${covPath}: not symmetric at [${i}, ${j}] (${a} vs ${b}): not a covariance`);
      }
    }
  }
  const modelPath = join(abs, CLASSIFIER_FILES.model);
  await requireFile(modelPath);
  return { dir: abs, info, modelPath, heldout: { dim: f, mean, cov } };
}

/** RGB bytes [B, side, side, 3] as the classifier's input: float32 NCHW, byte / 127.5 - 1 in [-1, 1]. */
export function toClassifierInput(rgb: Uint8Array, count: number, side: number): Float32Array {
  const plane = side * side;
  if (rgb.length !== count * plane * 3) throw new RangeError(`expected ${count} images of ${side}x${side}x3 bytes, got ${rgb.length} bytes`);
  const out = new Float32Array(count * 3 * plane);
  for (let b = 0; b < count; b++) {
    for (let p = 0; p < plane; p++) {
      const source = (b * plane + p) * 3;
      for (let c = 0; c < 3; c++) out[(b * 3 + c) * plane + p] = (rgb[source + c] as number) / 127.5 - 1;
    }
  }
  return out;
}

export interface Classification {
  /** float32 [B, K]. */
  logits: Float32Array;
  /** float32 [B, F]. */
  features: Float32Array;
}

/** Index of the largest value of row `row` of a [rows, width] array; -1 when it holds NaN. */
export function argmaxRow(values: Float32Array, row: number, width: number): number {
  let best = -1;
  let bestValue = Number.NEGATIVE_INFINITY;
  for (let k = 0; k < width; k++) {
    const v = values[row * width + k] as number;
    if (Number.isNaN(v)) return -1;
    if (v > bestValue) {
      best = k;
      bestValue = v;
    }
  }
  return best;
}

function describeDims(dims: readonly (number | string)[]): string {
  return `[${dims.join(', ')}]`;
}

/** The classifier's onnxruntime session, created once; `release` when done. */
export class Classifier {
  readonly dir: ClassifierDir;
  private readonly session: InferenceSession;
  private readonly TensorClass: typeof Tensor;

  private constructor(dir: ClassifierDir, session: InferenceSession, TensorClass: typeof Tensor) {
    this.dir = dir;
    this.session = session;
    this.TensorClass = TensorClass;
  }

  /**
   * Creates the session on the CPU and checks its inputs and outputs against classifier.json.
   * Throws ClassifierError with a one-line message.
   */
  static async load(dir: ClassifierDir, options: { intraOpNumThreads?: number } = {}): Promise<Classifier> {
    const ort = await import('onnxruntime-node');
    let session: InferenceSession;
    try {
      session = await ort.InferenceSession.create(dir.modelPath, {
        executionProviders: ['cpu'],
        graphOptimizationLevel: 'all',
        intraOpNumThreads: options.intraOpNumThreads ?? defaultIntraOpThreads(),
      });
    } catch (error) {
      const message = (error instanceof Error ? error.message : String(error)).replace(/\s+/g, ' ').trim();
      throw new ClassifierError(`${dir.modelPath}: cannot create an onnxruntime session: ${message}`);
    }
    const problems = sessionMismatches(dir, session);
    if (problems.length > 0) {
      await session.release().catch(() => {});
      throw new ClassifierError(`${dir.dir}: ${CLASSIFIER_FILES.info} disagrees with ${CLASSIFIER_FILES.model}: ${problems.join('; ')}`);
    }
    return new Classifier(dir, session, ort.Tensor);
  }

  /** Scores `count` images, RGB bytes [count, 32, 32, 3]. */
  async classify(rgb: Uint8Array, count: number): Promise<Classification> {
    const { info } = this.dir;
    const side = CLASSIFIER_RESOLUTION;
    const input = new this.TensorClass('float32', toClassifierInput(rgb, count, side), [count, CLASSIFIER_CHANNELS, side, side]);
    const outputs = await this.session.run({ [info.input]: input }, [info.outputs.logits, info.outputs.features]);
    const logits = outputs[info.outputs.logits];
    const features = outputs[info.outputs.features];
    const classes = info.class_names.length;
    const expect = (tensor: typeof logits, name: string, width: number): Float32Array => {
      const wanted = [count, width];
      if (!tensor || tensor.type !== 'float32' || tensor.dims.length !== 2 || tensor.dims[0] !== count || tensor.dims[1] !== width) {
        const found = tensor ? `${tensor.type} ${describeDims(tensor.dims)}` : 'nothing';
        throw new ClassifierError(`${this.dir.modelPath}: output '${name}' should be float32 ${describeDims(wanted)}, got ${found}`);
      }
      return tensor.data as Float32Array;
    };
    return {
      logits: expect(logits, info.outputs.logits, classes),
      features: expect(features, info.outputs.features, info.feature_dim),
    };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Every way the session contradicts classifier.json; static dimensions are checked, symbolic ones not. */
function sessionMismatches(dir: ClassifierDir, session: InferenceSession): string[] {
  const { info } = dir;
  const problems: string[] = [];
  const list = (names: readonly string[]): string => names.map((n) => `'${n}'`).join(', ') || 'none';
  const inputs = new Map(session.inputMetadata.map((m) => [m.name, m]));
  const outputs = new Map(session.outputMetadata.map((m) => [m.name, m]));
  const expectations = [
    { field: 'input', kind: 'input', table: inputs, name: info.input, dims: [null, CLASSIFIER_CHANNELS, CLASSIFIER_RESOLUTION, CLASSIFIER_RESOLUTION] },
    { field: 'outputs.logits', kind: 'output', table: outputs, name: info.outputs.logits, dims: [null, info.class_names.length] },
    { field: 'outputs.features', kind: 'output', table: outputs, name: info.outputs.features, dims: [null, info.feature_dim] },
  ] as const;
  for (const e of expectations) {
    const meta = e.table.get(e.name);
    if (!meta) {
      problems.push(`${e.field} is '${e.name}' but the model has no such ${e.kind} (its ${e.kind}s: ${list([...e.table.keys()])})`);
      continue;
    }
    if (!meta.isTensor) {
      problems.push(`${e.kind} '${e.name}' is not a tensor`);
      continue;
    }
    if (meta.type !== 'float32') problems.push(`${e.kind} '${e.name}' is ${meta.type}, expected float32`);
    if (meta.shape.length === 0) continue;
    const shapeOk =
      meta.shape.length === e.dims.length && e.dims.every((want, i) => want === null || typeof meta.shape[i] !== 'number' || meta.shape[i] === want);
    if (!shapeOk) {
      const wanted = describeDims(e.dims.map((d) => d ?? 'B'));
      problems.push(`${e.kind} '${e.name}' has shape ${describeDims(meta.shape)}, expected ${wanted}`);
    }
  }
  const extra = [...inputs.keys()].filter((name) => name !== info.input);
  if (extra.length > 0) problems.push(`the model has input${extra.length > 1 ? 's' : ''} ${list(extra)} that classifier.json does not name`);
  return problems;
}
