import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import type { ModelManifest } from '@pixelflow/schemas';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FORWARD_DIR,
  forwardCases,
  maxAbsDiff,
  TINY_MODEL_DIR,
  type ForwardCase,
} from '../../../test/support/forward-golden.ts';
import { loadModelDir, type ModelDir } from '@pixelflow/formats';
import type { Shape4 } from '@pixelflow/sampler';
import { readNpyAs } from '@pixelflow/formats';
import { cudaProviderNotInstalled, onnxruntimeLibDir } from '../src/cuda-provider.ts';
import { OnnxModel, OnnxModelError } from '../src/onnx-model.ts';

// OnnxModel against the real onnxruntime-node and the committed tiny model (59,852 parameters,
// stages 4 -> 32 px, 3 channels, 10 classes): the PyTorch golden forward passes, an event loop that
// stays free while the worker thread computes, queueing, input ownership, CUDA unavailability,
// manifests that contradict the model, stats and disposal.

/** fp32 ONNX vs fp32 PyTorch on CPU, as in test/onnx-fixture.test.ts. */
const TOLERANCE = 1e-4;

interface GoldenCase {
  c: ForwardCase;
  shape: Shape4;
  x: Float32Array;
  timestep: Float32Array;
  classLabels: BigInt64Array;
  velocity: Float32Array;
}

async function readGolden(c: ForwardCase): Promise<GoldenCase> {
  const file = (tensor: string): string => join(FORWARD_DIR, `${c.name}.${tensor}.npy`);
  const [x, timestep, classLabels, velocity] = await Promise.all([
    readNpyAs(file('x'), '<f4'),
    readNpyAs(file('timestep'), '<f4'),
    readNpyAs(file('class_labels'), '<i8'),
    readNpyAs(file('velocity'), '<f4'),
  ]);
  const [b, ch, h, w] = x.shape;
  if (x.shape.length !== 4 || b === undefined || ch === undefined || h === undefined || w === undefined) {
    throw new Error(`${c.name}: x has shape [${x.shape.join(', ')}], expected 4 dimensions`);
  }
  return { c, shape: [b, ch, h, w], x: x.data, timestep: timestep.data, classLabels: classLabels.data, velocity: velocity.data };
}

function expectMatchesGolden(actual: Float32Array, golden: GoldenCase): void {
  expect(actual).toBeInstanceOf(Float32Array);
  expect(actual.length, `${golden.c.name}: length`).toBe(golden.velocity.length);
  // All-zero goldens would let a model that outputs zeros pass.
  expect(maxAbsDiff(golden.velocity, new Float32Array(golden.velocity.length)).value).toBeGreaterThan(0);
  const worst = maxAbsDiff(actual, golden.velocity);
  expect(worst.value, `${golden.c.name}: max |predict - torch| at flat index ${worst.index}`).toBeLessThanOrEqual(TOLERANCE);
}

/** Deterministic, non-trivial inputs of any size. */
function syntheticInputs(shape: Shape4, numClasses: number) {
  const [batch, channels, height, width] = shape;
  const x = new Float32Array(batch * channels * height * width);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37) * 1.5;
  const timestep = Float32Array.from({ length: batch }, (_, i) => (i * 97) % 1000);
  const classLabels = BigInt64Array.from({ length: batch }, (_, i) => BigInt(i % (numClasses + 1)));
  return { x, timestep, classLabels };
}

/** Where this onnxruntime-node install would hold its CUDA provider. */
const cases = await forwardCases();
let tinyDir: ModelDir;
let goldens: GoldenCase[];
let model: OnnxModel;

beforeAll(async () => {
  tinyDir = await loadModelDir(TINY_MODEL_DIR);
  goldens = await Promise.all(cases.map(readGolden));
  model = await OnnxModel.load(tinyDir);
});

afterAll(async () => {
  await model?.dispose();
});

describe('OnnxModel on the tiny fixture', () => {
  it('loads on the CPU provider by default', () => {
    expect(model.provider).toBe('cpu');
    expect(model.fellBack).toBe(false);
    expect(model.fallbackReason).toBeNull();
  });

  it('matches the PyTorch golden forward pass of every case', async () => {
    expect(goldens.length).toBeGreaterThanOrEqual(8);
    for (const g of goldens) {
      expectMatchesGolden(await model.predict(g.x, g.shape, g.timestep, g.classLabels), g);
    }
  });

  it('keeps the caller\'s event loop free during a long forward pass', async () => {
    const numClasses = tinyDir.manifest.architecture.num_classes;
    const side = tinyDir.manifest.resolution;

    /** One forward pass at `batch` while a 1 ms timer records when the event loop got to run. */
    const measure = async (batch: number) => {
      const shape: Shape4 = [batch, 3, side, side];
      const inputs = syntheticInputs(shape, numClasses);
      const ticks: number[] = [];
      const timer = setInterval(() => ticks.push(performance.now()), 1);
      const before = model.stats().runMs;
      const start = performance.now();
      const velocity = await model.predict(inputs.x, shape, inputs.timestep, inputs.classLabels);
      const end = performance.now();
      clearInterval(timer);
      expect(velocity.length).toBe(inputs.x.length);
      const times = [start, ...ticks, end];
      const maxGap = Math.max(...times.slice(1).map((t, i) => t - (times[i] ?? t)));
      return { batch, runMs: model.stats().runMs - before, maxGap, ticks: ticks.length };
    };

    // Grow the batch until one forward pass takes 250 ms or more, whatever the machine's speed.
    let result = await measure(64);
    for (let attempt = 0; attempt < 4 && result.runMs < 250; attempt++) {
      result = await measure(Math.min(4096, Math.ceil((result.batch * 400) / Math.max(result.runMs, 1))));
    }
    expect(result.runMs, `batch ${result.batch}: the forward pass must be long enough to show a stall`).toBeGreaterThanOrEqual(200);
    // Run on this thread, the forward pass would be one gap of runMs (250 ms and more), every time.
    // On 2 cores shared with onnxruntime's threads we see gaps of 5-15 ms; other processes on the
    // machine (a parallel tsc, say) can add one of 40-50 ms now and then. A stall repeats, a
    // scheduling hiccup does not: up to two more tries at the same size before calling it a stall.
    for (let retry = 0; retry < 2 && result.maxGap >= 40; retry++) result = await measure(result.batch);
    const { batch, runMs, maxGap, ticks } = result;
    expect(maxGap, `largest event-loop gap during a ${runMs.toFixed(0)} ms run (batch ${batch})`).toBeLessThan(40);
    expect(ticks, 'the timer kept firing').toBeGreaterThan(runMs / 40);
  });

  it('gives every concurrent predict() its own result', async () => {
    // Every golden case at once, different shapes interleaved, twice over.
    const all = [...goldens, ...[...goldens].reverse()];
    const results = await Promise.all(all.map((g) => model.predict(g.x, g.shape, g.timestep, g.classLabels)));
    results.forEach((velocity, i) => expectMatchesGolden(velocity, all[i]!));
  });

  it('neither detaches nor modifies the inputs, and snapshots them at the call', async () => {
    const g = goldens.find((candidate) => candidate.shape[0] > 1) ?? goldens[0]!;
    // x as a view into the middle of a larger buffer, as a caller's scratch memory would be.
    const backing = new Float32Array(g.x.length + 10).fill(7);
    const x = backing.subarray(5, 5 + g.x.length);
    x.set(g.x);
    const timestep = g.timestep.slice();
    const classLabels = g.classLabels.slice();

    const pending = model.predict(x, g.shape, timestep, classLabels);
    // Still attached and intact right after the call...
    expect(backing.buffer.byteLength).toBe((g.x.length + 10) * 4);
    expect(timestep.buffer.byteLength).toBe(g.timestep.byteLength);
    expect(classLabels.buffer.byteLength).toBe(g.classLabels.byteLength);
    // ...and the prediction is of the values at the call, whatever the caller does next.
    x.fill(123);
    timestep.fill(1);
    classLabels.fill(0n);
    expectMatchesGolden(await pending, g);

    // Once resolved, the inputs hold exactly what they held before the call.
    x.set(g.x);
    timestep.set(g.timestep);
    classLabels.set(g.classLabels);
    expectMatchesGolden(await model.predict(x, g.shape, timestep, classLabels), g);
    expect(backing.buffer.byteLength).toBe((g.x.length + 10) * 4);
    expect(x).toEqual(g.x);
    expect(timestep).toEqual(g.timestep);
    expect(classLabels).toEqual(g.classLabels);
    expect([...backing.subarray(0, 5), ...backing.subarray(5 + g.x.length)]).toEqual(new Array(10).fill(7));
  });

  it('rejects inconsistent arguments with a clear error, without running the model', async () => {
    const g = goldens[1]!;
    const [b, c, h, w] = g.shape;
    const calls = model.stats().calls;
    await expect(model.predict(g.x.subarray(1), g.shape, g.timestep, g.classLabels)).rejects.toThrow(
      new RangeError(`OnnxModel.predict: x has ${g.x.length - 1} values but shape [${b}, ${c}, ${h}, ${w}] needs ${g.x.length}`),
    );
    await expect(model.predict(g.x, g.shape, g.timestep.subarray(1), g.classLabels)).rejects.toThrow(
      `timestep has ${b - 1} values for a batch of ${b}`,
    );
    await expect(model.predict(g.x, g.shape, g.timestep, new BigInt64Array(b + 1))).rejects.toThrow(
      `classLabels has ${b + 1} values for a batch of ${b}`,
    );
    await expect(model.predict(g.x, [b, 1, h * 3, w], g.timestep, g.classLabels)).rejects.toThrow(
      'has 1 channels, the model takes 3',
    );
    await expect(model.predict(g.x, [b, c, h, w, 1] as unknown as Shape4, g.timestep, g.classLabels)).rejects.toThrow(
      'shape must be 4 positive integers',
    );
    await expect(
      model.predict(g.x, g.shape, g.timestep, g.classLabels.map(() => 11n)),
    ).rejects.toThrow('class label 11 is outside 0..10 (10 = unconditional)');
    expect(model.stats().calls).toBe(calls);
  });
});

describe('OnnxModel providers', () => {
  const cudaInstalled = cudaProviderNotInstalled() === null;

  // Dev machines and CI have no CUDA provider (pnpm skips its download); the GPU image installs
  // it, and whether a GPU is usable then is the machine's business. Each test checks both cases.
  it('refuses provider cuda without fallback when CUDA is unusable, in one line', async () => {
    const outcome = await OnnxModel.load(tinyDir, { provider: 'cuda' }).then(
      async (loaded) => {
        const provider = loaded.provider;
        await loaded.dispose();
        return provider;
      },
      (e: unknown) => e,
    );
    if (cudaInstalled && outcome === 'cuda') return;
    expect(outcome).toBeInstanceOf(OnnxModelError);
    const message = (outcome as Error).message;
    expect(message).not.toContain('\n');
    expect(message).toMatch(new RegExp(`^${tinyDir.modelPath}: .*provider 'cuda' unavailable: `));
    if (!cudaInstalled) {
      expect(message).toBe(
        `${tinyDir.modelPath}: provider 'cuda' unavailable: onnxruntime's CUDA execution provider is not installed: ` +
          `libonnxruntime_providers_shared.so and libonnxruntime_providers_cuda.so missing from ${onnxruntimeLibDir()} ` +
          '(run `pnpm pixelflow cuda install`, see deploy/README.md)',
      );
    }
  });

  it('falls back to the CPU when allowed, and records why', async () => {
    const fallback = await OnnxModel.load(tinyDir, { provider: 'cuda', deviceId: 0, fallbackToCpu: true });
    try {
      if (!cudaInstalled) expect(fallback.provider).toBe('cpu');
      expect(fallback.fellBack).toBe(fallback.provider === 'cpu');
      if (fallback.fellBack) {
        expect(fallback.fallbackReason).toContain(cudaInstalled ? 'could not start the CUDA execution provider' : 'CUDA execution provider is not installed');
      } else {
        expect(fallback.fallbackReason).toBeNull();
      }
      const g = goldens[0]!;
      expectMatchesGolden(await fallback.predict(g.x, g.shape, g.timestep, g.classLabels), g);
    } finally {
      await fallback.dispose();
    }
  });

  it('runs an operator on every CPU unless told otherwise', async () => {
    // onnxruntime's own default counts physical cores and chose 1 of this VM's 2 CPUs.
    const model = await OnnxModel.load(tinyDir);
    try {
      expect(model.intraOpThreads).toBe(availableParallelism());
    } finally {
      await model.dispose();
    }
  });

  it('accepts thread and optimization options', async () => {
    const single = await OnnxModel.load(tinyDir, {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'basic',
    });
    try {
      expect(single.intraOpThreads).toBe(1);
      for (const g of goldens.filter((candidate) => candidate.shape[0] > 1)) {
        expectMatchesGolden(await single.predict(g.x, g.shape, g.timestep, g.classLabels), g);
      }
    } finally {
      await single.dispose();
    }
  });

  it('refuses invalid options before starting anything', async () => {
    await expect(OnnxModel.load(tinyDir, { intraOpNumThreads: -1 })).rejects.toThrow(
      new OnnxModelError('intraOpNumThreads must be an integer >= 0, not -1'),
    );
    await expect(OnnxModel.load(tinyDir, { deviceId: 0.5 })).rejects.toThrow('deviceId must be an integer >= 0, not 0.5');
    await expect(OnnxModel.load(tinyDir, { provider: 'tpu' as 'cpu' })).rejects.toThrow(
      `provider must be 'cpu' or 'cuda', not "tpu"`,
    );
    await expect(OnnxModel.load(tinyDir, { graphOptimizationLevel: 'max' as 'all' })).rejects.toThrow(
      'graphOptimizationLevel must be one of disabled, basic, extended, all, not "max"',
    );
  });
});

describe('OnnxModel against a manifest that disagrees with the model', () => {
  let scratch: string;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'pixelflow-onnx-model-'));
  });

  afterAll(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  /** A copy of the tiny model whose pixelflow.json went through `edit`; the schema still accepts it. */
  async function editedModel(name: string, edit: (manifest: ModelManifest) => void): Promise<ModelDir> {
    const dir = join(scratch, name);
    await cp(join(TINY_MODEL_DIR, 'model.onnx'), join(dir, 'model.onnx'));
    const manifest = JSON.parse(await readFile(join(TINY_MODEL_DIR, 'pixelflow.json'), 'utf8')) as ModelManifest;
    edit(manifest);
    await writeFile(join(dir, 'pixelflow.json'), JSON.stringify(manifest, null, 2));
    return loadModelDir(dir);
  }

  async function loadError(dir: ModelDir): Promise<Error> {
    const error = await OnnxModel.load(dir).then(
      async (loaded) => {
        await loaded.dispose();
        return null;
      },
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(OnnxModelError);
    expect((error as Error).message).not.toContain('\n');
    expect((error as Error).message).toContain(`${dir.dir}: pixelflow.json disagrees with model.onnx: `);
    return error as Error;
  }

  it('names a renamed input', async () => {
    const dir = await editedModel('renamed-input', (m) => {
      m.onnx.inputs.x = 'image';
    });
    expect(dir.manifest.onnx.inputs.x).toBe('image');
    const error = await loadError(dir);
    expect(error.message).toContain(
      "onnx.inputs.x is 'image' but the model has no such input (its inputs: 'x', 'timestep', 'class_labels')",
    );
    expect(error.message).toContain("the model has input 'x' that onnx.inputs does not name");
  });

  it('names a wrong channel count', async () => {
    const dir = await editedModel('four-channels', (m) => {
      m.architecture.in_channels = 4;
    });
    const error = await loadError(dir);
    expect(error.message).toContain("architecture.in_channels is 4 but input 'x' has 3 channels (shape [batch, 3, height, width])");
  });

  it('names a wrong output and every other disagreement at once', async () => {
    const dir = await editedModel('bad-output', (m) => {
      m.onnx.outputs.velocity = 'v';
      m.onnx.inputs.class_labels = 'timestep';
    });
    const error = await loadError(dir);
    expect(error.message).toContain("onnx.outputs.velocity is 'v' but the model has no such output (its outputs: 'velocity')");
    expect(error.message).toContain("onnx.inputs.class_labels: input 'timestep' is float32, expected int64");
    expect(error.message).toContain("the model has input 'class_labels' that onnx.inputs does not name");
  });
});

describe('OnnxModel lifecycle', () => {
  it('counts calls and session time, and rejects predictions after dispose', async () => {
    const own = await OnnxModel.load(tinyDir);
    expect(own.stats()).toEqual({ calls: 0, runMs: 0 });
    const g = goldens[2]!;
    await own.predict(g.x, g.shape, g.timestep, g.classLabels);
    await own.predict(g.x, g.shape, g.timestep, g.classLabels);
    const stats = own.stats();
    expect(stats.calls).toBe(2);
    expect(stats.runMs).toBeGreaterThan(0);

    // A prediction still queued when dispose is called rejects rather than hanging.
    const queued = own.predict(g.x, g.shape, g.timestep, g.classLabels);
    const disposed = own.dispose();
    await expect(queued).rejects.toThrow(OnnxModelError);
    await disposed;
    await expect(own.predict(g.x, g.shape, g.timestep, g.classLabels)).rejects.toThrow(
      new OnnxModelError(`OnnxModel for ${tinyDir.modelPath} has been disposed`),
    );
    await expect(own.dispose()).resolves.toBeUndefined();
    expect(own.stats().calls).toBeGreaterThanOrEqual(2);
  });

  it('rejects pending and later predictions when its worker thread dies', async () => {
    const own = await OnnxModel.load(tinyDir);
    const g = goldens[3]!;
    // The thread ends the way a crash would end it, but while idle: terminating it during a forward
    // pass aborts the whole process in onnxruntime-node (seen in 1.30; see OnnxModel.dispose).
    const internals = own as unknown as { worker: Worker };
    const terminated = internals.worker.terminate();
    // Sent to a thread that will never read it: only the exit can answer it.
    const pending = own.predict(g.x, g.shape, g.timestep, g.classLabels);
    await terminated;
    await expect(pending).rejects.toThrow(
      new OnnxModelError(`the onnxruntime worker thread for ${tinyDir.modelPath} exited unexpectedly (code 1)`),
    );
    await expect(own.predict(g.x, g.shape, g.timestep, g.classLabels)).rejects.toThrow(/exited unexpectedly/);
    await expect(own.dispose()).resolves.toBeUndefined();
  });
});
