import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ModelDir } from '@pixelflow/formats';
import type { Shape4 } from '@pixelflow/sampler';
import { defaultIntraOpThreads } from './onnx-model.ts';

// Where a forward pass spends its time, operator by operator, from onnxruntime's own profiler: the
// graph as onnxruntime runs it, after its fusions, so it also shows which fusions took place.
// For benchmarks and tests; it runs a session on the calling thread (a service never profiles).

export interface OperatorTime {
  /** onnxruntime's operator type after graph optimisation (MatMul, FastGelu, ...). */
  opType: string;
  /** Nodes of this type that ran in one forward pass. */
  nodes: number;
  /** Mean milliseconds per forward pass spent in this type's kernels. */
  ms: number;
}

export interface OperatorProfile {
  shape: Shape4;
  /** Mean wall milliseconds of one profiled forward pass (onnxruntime's model_run events). */
  runMs: number;
  /** Sorted by time, longest first. */
  operators: OperatorTime[];
}

interface ProfileEvent {
  cat: string;
  name: string;
  /** Start and duration, microseconds. */
  ts: number;
  dur: number;
  args?: { op_name?: string };
}

export interface ProfileOptions {
  /** Forward passes before profiling starts, to leave allocation and planning out. Default 2. */
  warmup?: number;
  /** Profiled forward passes. Default 3. */
  runs?: number;
  /** Default: one per CPU, as OnnxModel. */
  intraOpNumThreads?: number;
}

/** Adds up kernel time by operator type over `runs` profiled passes of onnxruntime's trace events. */
function summariseProfile(events: readonly ProfileEvent[], runs: number, shape: Shape4): OperatorProfile {
  const byType = new Map<string, { us: number; nodes: number }>();
  let runUs = 0;
  for (const event of events) {
    if (event.cat === 'Session' && event.name === 'model_run') runUs += event.dur;
    if (event.cat !== 'Node' || !event.name.endsWith('_kernel_time')) continue;
    const opType = event.args?.op_name ?? 'unknown';
    const entry = byType.get(opType) ?? { us: 0, nodes: 0 };
    entry.us += event.dur;
    entry.nodes += 1;
    byType.set(opType, entry);
  }
  const operators = [...byType]
    .map(([opType, { us, nodes }]) => ({ opType, nodes: nodes / runs, ms: us / runs / 1000 }))
    .sort((a, b) => b.ms - a.ms);
  return { shape, runMs: runUs / runs / 1000, operators };
}

/**
 * Profiles `runs` forward passes of `model` at `shape` (random inputs, class 0, t = 500) with
 * onnxruntime's profiler and sums the kernel time per operator type.
 */
export async function profileOperators(model: ModelDir, shape: Shape4, options: ProfileOptions = {}): Promise<OperatorProfile> {
  const { warmup = 2, runs = 3, intraOpNumThreads = defaultIntraOpThreads() } = options;
  const ort = await import('onnxruntime-node');
  const { inputs } = model.manifest.onnx;
  const scratch = await mkdtemp(join(tmpdir(), 'pixelflow-profile-'));
  try {
    const session = await ort.InferenceSession.create(model.modelPath, {
      graphOptimizationLevel: 'all',
      intraOpNumThreads,
      enableProfiling: true,
      profileFilePrefix: join(scratch, 'profile'),
    });
    const [batch] = shape;
    const x = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => Math.random() * 2 - 1);
    const feeds = {
      [inputs.x]: new ort.Tensor('float32', x, shape),
      [inputs.timestep]: new ort.Tensor('float32', new Float32Array(batch).fill(500), [batch]),
      [inputs.class_labels]: new ort.Tensor('int64', new BigInt64Array(batch), [batch]),
    };
    try {
      for (let i = 0; i < warmup + runs; i++) await session.run(feeds);
      await session.endProfiling();
    } finally {
      await session.release();
    }
    const [file] = (await readdir(scratch)).filter((name) => name.endsWith('.json'));
    if (file === undefined) throw new Error('onnxruntime wrote no profile');
    const events = JSON.parse(await readFile(join(scratch, file), 'utf8')) as ProfileEvent[];
    // Keep only the last `runs` passes: the warm-up ones are in the trace too.
    const runStarts = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').map((e) => e.ts);
    const from = runStarts[runStarts.length - runs] ?? 0;
    const kept = events.filter((e) => e.ts >= from);
    return summariseProfile(kept, runs, shape);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
