import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ModelManifest } from '@pixelflow/schemas';
import { loadModelDir } from '../../formats/src/model-dir.ts';
import { BatchingModel, type BatchInfo, type BatchingModelOptions } from '../src/batching-model.ts';
import type { Shape4, VelocityModel } from '../src/model.ts';
import { sample, type SampleOptions, type SampleResult } from '../src/sample.ts';

// BatchingModel over a model whose answer for an image depends on that image's (x, t, label) only,
// as a network's does: merged calls must then give every caller bit for bit what it would get
// alone. The fake records the calls it gets, and can hold them open to let requests pile up.

const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/tiny/', import.meta.url));
let manifest: ModelManifest;
beforeAll(async () => {
  manifest = (await loadModelDir(FIXTURE)).manifest;
});

/** The per-image field: smooth, label- and time-dependent, and different at every pixel. */
function velocityOf(x: Float32Array, shape: Shape4, timestep: Float32Array, labels: BigInt64Array): Float32Array {
  const perImage = x.length / shape[0];
  const v = new Float32Array(x.length);
  for (let b = 0; b < shape[0]; b++) {
    const t = (timestep[b] as number) / 1000;
    const label = Number(labels[b]);
    const pull = label === 10 ? 0.2 : 0.05 * label;
    for (let j = 0; j < perImage; j++) {
      const i = b * perImage + j;
      v[i] = pull - 0.5 * t * (x[i] as number) + 0.01 * Math.cos(j);
    }
  }
  return v;
}

interface InnerCall {
  shape: Shape4;
  x: Float32Array;
  timesteps: number[];
  labels: number[];
}

class PerImageModel implements VelocityModel {
  readonly calls: InnerCall[] = [];
  /** While set, calls wait for it: the model is "busy". */
  gate: Promise<void> | null = null;
  /** The next call rejects with this. */
  failNext: Error | null = null;

  async predict(x: Float32Array, shape: Shape4, timestep: Float32Array, labels: BigInt64Array): Promise<Float32Array> {
    this.calls.push({ shape, x, timesteps: Array.from(timestep), labels: Array.from(labels, Number) });
    const failure = this.failNext;
    this.failNext = null;
    // The answer comes on a later macrotask, as a message from the onnxruntime thread does.
    await new Promise((resolve) => setImmediate(resolve));
    if (this.gate) await this.gate;
    if (failure) throw failure;
    return velocityOf(x, shape, timestep, labels);
  }

  /** Makes later calls wait; returns what lets them go. */
  hold(): () => void {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    this.gate = gate;
    return () => {
      if (this.gate === gate) this.gate = null;
      release();
    };
  }

  /** Which requests (told apart by label) each call merged, in row order, one entry per request. */
  requestLabels(): number[][] {
    return this.calls.map((call) => call.labels.filter((label, row) => row === 0 || label !== call.labels[row - 1]));
  }
}

/** Inputs of one request; `id` is its class label and seeds its values, so every request differs. */
function request(id: number, batch: number, side = 8) {
  const shape: Shape4 = [batch, 3, side, side];
  const x = Float32Array.from({ length: batch * 3 * side * side }, (_, i) => Math.sin(i * 0.37 + id));
  const timestep = Float32Array.from({ length: batch }, (_, b) => 100 * id + b);
  const classLabels = new BigInt64Array(batch).fill(BigInt(id));
  return { shape, x, timestep, classLabels, expected: velocityOf(x, shape, timestep, classLabels) };
}

type Request = ReturnType<typeof request>;

function send(model: VelocityModel, r: Request): Promise<Float32Array> {
  return model.predict(r.x, r.shape, r.timestep, r.classLabels);
}

const nextMacrotask = () => new Promise((resolve) => setImmediate(resolve));

function batcher(inner: VelocityModel, options: Partial<BatchingModelOptions> = {}) {
  const batches: BatchInfo[] = [];
  const model = new BatchingModel(inner, { maxBatch: 64, onBatch: (b) => batches.push(b), ...options });
  return { model, batches };
}

describe('BatchingModel', () => {
  it('merges requests of one shape into one call and answers each with its own rows, in fresh arrays', async () => {
    const inner = new PerImageModel();
    const { model, batches } = batcher(inner);
    const requests = [request(1, 2), request(2, 1), request(3, 3)];
    const results = await Promise.all(requests.map((r) => send(model, r)));
    expect(inner.calls.map((c) => c.shape)).toEqual([[6, 3, 8, 8]]);
    expect(inner.requestLabels()).toEqual([[1, 2, 3]]);
    results.forEach((result, i) => {
      expect(result).toEqual(requests[i]!.expected);
      expect(result.buffer.byteLength).toBe(result.byteLength); // owned, not a view of the shared output
    });
    expect(batches).toEqual([{ resolution: 8, channels: 3, images: 6, padded: 6, requests: 3, seconds: expect.any(Number) }]);
    expect(batches[0]!.seconds).toBeGreaterThan(0);
  });

  it('passes a lone unpadded request straight through, without copying', async () => {
    const inner = new PerImageModel();
    const { model } = batcher(inner);
    const r = request(4, 2);
    expect(await send(model, r)).toEqual(r.expected);
    expect(inner.calls[0]!.x).toBe(r.x);
  });

  it('leads with the smallest resolution waiting, each call taking the others of its shape in arrival order', async () => {
    const inner = new PerImageModel();
    const { model } = batcher(inner);
    const release = inner.hold();
    const first = send(model, request(1, 1, 8));
    await nextMacrotask(); // the first call is in flight; the rest wait behind it
    const rest = [request(2, 1, 16), request(3, 2, 8), request(4, 1, 16), request(5, 1, 8), request(6, 1, 4)];
    const answers = rest.map((r) => send(model, r));
    expect(model.pending).toBe(5);
    release();
    const results = await Promise.all([first, ...answers]);
    expect(inner.requestLabels()).toEqual([[1], [6], [3, 5], [2, 4]]);
    expect(inner.calls.map((c) => c.shape)).toEqual([[1, 3, 8, 8], [1, 3, 4, 4], [3, 3, 8, 8], [2, 3, 16, 16]]);
    rest.forEach((r, i) => expect(results[i + 1]).toEqual(r.expected));
    expect(model.pending).toBe(0);
  });

  it('serves strictly oldest first with maxPassOvers 0', async () => {
    const inner = new PerImageModel();
    const { model } = batcher(inner, { maxPassOvers: 0 });
    const release = inner.hold();
    const first = send(model, request(1, 1, 8));
    await nextMacrotask();
    const rest = [request(2, 1, 16), request(3, 2, 8), request(4, 1, 16), request(5, 1, 8), request(6, 1, 4)];
    const answers = rest.map((r) => send(model, r));
    release();
    await Promise.all([first, ...answers]);
    expect(inner.requestLabels()).toEqual([[1], [2, 4], [3, 5], [6]]);
  });

  it('lets a request be passed over for smaller resolutions at most maxPassOvers times in a row', async () => {
    const inner = new PerImageModel();
    const { model } = batcher(inner, { maxPassOvers: 2 });
    const big = send(model, request(100, 1, 16));
    await nextMacrotask(); // 100 runs at once: nothing else waits
    await big;
    // A stream of small requests that would always win on resolution: one waiting before each call.
    let id = 1;
    const small: Promise<Float32Array>[] = [];
    const hold = inner.hold();
    small.push(send(model, request(id++, 1, 4)));
    await nextMacrotask();
    const late = send(model, request(200, 1, 16));
    small.push(send(model, request(id++, 1, 4)));
    hold();
    for (let i = 0; i < 4; i++) {
      await small.at(-1);
      small.push(send(model, request(id++, 1, 4)));
    }
    await Promise.all([late, ...small]);
    const order = inner.requestLabels().flat();
    // 200 waited behind call 1 (already running), then was passed over twice, then led.
    const at = order.indexOf(200);
    expect(order.slice(0, at).filter((label) => label !== 100)).toHaveLength(3);
  });

  it('puts at most maxBatch images in a call, and runs a larger request alone, whole', async () => {
    const inner = new PerImageModel();
    const { model, batches } = batcher(inner, { maxBatch: 4 });
    const release = inner.hold();
    const first = send(model, request(1, 1));
    await nextMacrotask();
    // 2 and 4 fit together; 3 does not fit after them and waits its turn; 6 exceeds maxBatch.
    const rest = [request(2, 2), request(3, 3), request(4, 1), request(5, 6), request(6, 2), request(7, 1)];
    const answers = rest.map((r) => send(model, r));
    release();
    const results = await Promise.all([first, ...answers]);
    expect(inner.requestLabels()).toEqual([[1], [2, 4, 7], [3], [5], [6]]);
    expect(batches.map((b) => b.images)).toEqual([1, 4, 3, 6, 2]);
    expect(batches.map((b) => b.requests)).toEqual([1, 3, 1, 1, 1]);
    rest.forEach((r, i) => expect(results[i + 1]).toEqual(r.expected));
  });

  it('caps rows x height x width per call with maxPixels, by resolution, a larger request still running whole', async () => {
    const inner = new PerImageModel();
    const { model, batches } = batcher(inner, { maxBatch: 16, maxPixels: 4 * 8 * 8 });
    const release = inner.hold();
    const first = send(model, request(1, 1, 16));
    await nextMacrotask();
    // 8 px: four rows per call; 16 px: one row per call; a 2-row 16 px request alone.
    const rest = [request(2, 2, 8), request(3, 2, 8), request(4, 1, 8), request(5, 1, 16), request(6, 2, 16), request(7, 1, 16)];
    const answers = rest.map((r) => send(model, r));
    release();
    const results = await Promise.all([first, ...answers]);
    expect(inner.requestLabels()).toEqual([[1], [2, 3], [4], [5], [6], [7]]);
    expect(batches.map((b) => b.images)).toEqual([1, 4, 1, 1, 2, 1]);
    rest.forEach((r, i) => expect(results[i + 1]).toEqual(r.expected));
  });

  it('pads only to buckets within the call\'s row limit, otherwise runs the call as it is', async () => {
    const inner = new PerImageModel();
    const { model, batches } = batcher(inner, { maxBatch: 16, maxPixels: 8 * 8 * 8, batchSizes: [1, 2, 4, 16] });
    const release = inner.hold();
    const first = send(model, request(1, 1, 8));
    await nextMacrotask();
    // 5 rows of 8 px: the next bucket (16) is over the 8-row limit at 8 px, so no padding.
    const rest = [request(2, 2, 8), request(3, 3, 8)];
    const answers = rest.map((r) => send(model, r));
    release();
    const results = await Promise.all([first, ...answers]);
    expect(batches.map((b) => [b.images, b.padded])).toEqual([[1, 1], [5, 5]]);
    rest.forEach((r, i) => expect(results[i + 1]).toEqual(r.expected));
  });

  it('pads each call to the smallest bucket that holds it, with copies of the last image, and drops their rows', async () => {
    const inner = new PerImageModel();
    const { model, batches } = batcher(inner, { maxBatch: 16, batchSizes: [8, 1, 4, 2, 4] });
    expect(model.batchSizes).toEqual([1, 2, 4, 8]);

    const merged = [request(1, 1), request(2, 2)];
    const mergedResults = await Promise.all(merged.map((r) => send(model, r)));
    const lone = request(3, 3);
    const loneResult = await send(model, lone);
    const exact = request(4, 2);
    const exactResult = await send(model, exact);
    const large = [request(5, 7), request(6, 5)];
    const largeResults = await Promise.all(large.map((r) => send(model, r)));

    expect(inner.calls.map((c) => c.shape[0])).toEqual([4, 4, 2, 12]);
    expect(batches.map((b) => [b.images, b.padded, b.requests])).toEqual([[3, 4, 2], [3, 4, 1], [2, 2, 1], [12, 12, 2]]);
    mergedResults.forEach((result, i) => expect(result).toEqual(merged[i]!.expected));
    expect(loneResult).toEqual(lone.expected);
    expect(exactResult).toEqual(exact.expected);
    largeResults.forEach((result, i) => expect(result).toEqual(large[i]!.expected));
    expect(inner.calls[2]!.x).toBe(exact.x); // a bucket size alone needs no copy

    // The padding row of the first call repeats request 2's second image, time and label.
    const padded = inner.calls[0]!;
    const perImage = 3 * 8 * 8;
    expect(padded.x.subarray(3 * perImage)).toEqual(padded.x.subarray(2 * perImage, 3 * perImage));
    expect(padded.timesteps).toEqual([100, 200, 201, 201]);
    expect(padded.labels).toEqual([1, 2, 2, 2]);
  });

  it('rejects every request of a failed call with its error, and keeps serving', async () => {
    const inner = new PerImageModel();
    const { model, batches } = batcher(inner);
    const release = inner.hold();
    const failure = new Error('device lost');
    inner.failNext = failure;
    const failed = [send(model, request(1, 1)), send(model, request(2, 2))];
    await nextMacrotask();
    const waiting = request(3, 1);
    const later = send(model, waiting);
    release();
    for (const answer of failed) await expect(answer).rejects.toBe(failure);
    expect(await later).toEqual(waiting.expected);
    const after = request(4, 2);
    expect(await send(model, after)).toEqual(after.expected);
    expect(inner.requestLabels()).toEqual([[1, 2], [3], [4]]);
    expect(batches.map((b) => b.requests)).toEqual([1, 1]); // only calls that succeeded are reported
  });

  it('withdraws a waiting request whose caller aborts: it rejects at once and never reaches the model', async () => {
    const inner = new PerImageModel();
    const { model, batches } = batcher(inner);
    const release = inner.hold();
    const [a, b, c, d] = [request(1, 1), request(2, 2), request(3, 1), request(4, 1)];
    const running = send(model, a);
    await nextMacrotask(); // a's call is in flight; b and c wait for the next
    const canceled = new AbortController();
    const withdrawn = model.withSignal(canceled.signal).predict(b.x, b.shape, b.timestep, b.classLabels);
    const kept = model.predict(c.x, c.shape, c.timestep, c.classLabels, new AbortController().signal);
    expect(model.pending).toBe(2);
    canceled.abort('canceled');
    const error = await withdrawn.catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(DOMException);
    expect(error).toMatchObject({ name: 'AbortError', cause: 'canceled' });
    expect(model.pending).toBe(1);
    // An already aborted caller's request is refused without waiting.
    await expect(model.predict(d.x, d.shape, d.timestep, d.classLabels, canceled.signal)).rejects.toMatchObject({ name: 'AbortError' });
    release();
    expect(await running).toEqual(a.expected);
    expect(await kept).toEqual(c.expected);
    expect(inner.requestLabels()).toEqual([[1], [3]]);
    expect(batches.map((batch) => batch.images)).toEqual([1, 1]);
  });

  it('runs a dispatched call whose caller aborts to the end for the others, and drops that caller’s rows', async () => {
    const inner = new PerImageModel();
    const { model } = batcher(inner);
    const release = inner.hold();
    const [a, b, c] = [request(1, 1), request(2, 2), request(3, 1)];
    const leaving = new AbortController();
    const answers = [send(model, a), model.predict(b.x, b.shape, b.timestep, b.classLabels, leaving.signal), send(model, c)];
    await nextMacrotask(); // all three are in one call now
    expect(model.pending).toBe(0);
    leaving.abort('canceled');
    release();
    const settled = await Promise.allSettled(answers);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((settled[1] as PromiseRejectedResult).reason).toMatchObject({ name: 'AbortError', cause: 'canceled' });
    expect((settled[0] as PromiseFulfilledResult<Float32Array>).value).toEqual(a.expected);
    expect((settled[2] as PromiseFulfilledResult<Float32Array>).value).toEqual(c.expected);
    expect(inner.requestLabels()).toEqual([[1, 2, 3]]);
    // Alone in its call (passed straight through), an aborted caller's answer is dropped the same way.
    const alone = new AbortController();
    const lone = model.predict(a.x, a.shape, a.timestep, a.classLabels, alone.signal);
    await nextMacrotask();
    alone.abort();
    await expect(lone).rejects.toMatchObject({ name: 'AbortError' });
    expect(inner.calls).toHaveLength(2);
  });

  it('rejects a request whose arrays do not match its shape, alone, before it joins a call', async () => {
    const inner = new PerImageModel();
    const { model } = batcher(inner);
    const a = request(1, 2);
    const b = request(2, 2);
    const c = request(3, 1);
    const answers = [
      send(model, a),
      model.predict(b.x.subarray(1), b.shape, b.timestep, b.classLabels),
      model.predict(b.x, b.shape, b.timestep.subarray(1), b.classLabels),
      model.predict(b.x, b.shape, b.timestep, new BigInt64Array(3)),
      model.predict(b.x, [2, 3, 8] as unknown as Shape4, b.timestep, b.classLabels),
      model.predict(b.x, [0, 3, 8, 8], b.timestep, b.classLabels),
      send(model, c),
    ];
    const settled = await Promise.allSettled(answers);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'rejected', 'rejected', 'rejected', 'fulfilled']);
    const reasons = settled.flatMap((s) => (s.status === 'rejected' ? [s.reason as Error] : []));
    expect(reasons.every((reason) => reason instanceof RangeError)).toBe(true);
    expect(reasons.map((reason) => reason.message)).toEqual([
      'BatchingModel.predict: x has 383 values but shape [2, 3, 8, 8] needs 384',
      'BatchingModel.predict: timestep has 1 values for a batch of 2',
      'BatchingModel.predict: classLabels has 3 values for a batch of 2',
      'BatchingModel.predict: shape must be 4 positive integers [batch, channels, height, width], not [2,3,8]',
      'BatchingModel.predict: shape must be 4 positive integers [batch, channels, height, width], not [0,3,8,8]',
    ]);
    expect(inner.requestLabels()).toEqual([[1, 3]]);
    expect(await answers[0]).toEqual(a.expected);
    expect(await answers[6]).toEqual(c.expected);
  });

  it('rejects invalid options with a clear message', () => {
    const inner = new PerImageModel();
    const make = (options: BatchingModelOptions) => () => new BatchingModel(inner, options);
    expect(make({ maxBatch: 0 })).toThrow(new RangeError('BatchingModel: maxBatch must be an integer >= 1, not 0'));
    expect(make({ maxBatch: 2.5 })).toThrow('maxBatch must be an integer >= 1, not 2.5');
    expect(make({ maxBatch: Number.NaN })).toThrow(RangeError);
    expect(make({ maxBatch: 4, batchSizes: [] })).toThrow('batchSizes must list at least one batch size');
    expect(make({ maxBatch: 4, batchSizes: [1, 0] })).toThrow(new RangeError('BatchingModel: batchSizes must be integers >= 1, not [1,0]'));
    expect(make({ maxBatch: 4, batchSizes: [2, 3.5] })).toThrow(RangeError);
    expect(make({ maxBatch: 4, onBatch: 'metrics' as unknown as () => void })).toThrow('onBatch must be a function');
    expect(new BatchingModel(inner, { maxBatch: 4 }).batchSizes).toBeNull();
  });
});

describe('BatchingModel under concurrent sample() runs', () => {
  interface Job {
    label: number;
    overrides?: Partial<SampleOptions>;
  }

  function jobOptions(model: VelocityModel, { label, overrides }: Job): SampleOptions {
    return {
      model,
      manifest,
      classLabels: [label, label],
      solver: 'euler',
      cfgScale: 3,
      noiseShift: 1,
      steps: [3, 2, 2, 3],
      seed: 1000 + label,
      ...overrides,
    };
  }

  /** Each job on the bare model, one after another. */
  async function soloRuns(jobs: readonly Job[]): Promise<SampleResult[]> {
    const results: SampleResult[] = [];
    for (const job of jobs) results.push(await sample(jobOptions(new PerImageModel(), job)));
    return results;
  }

  function expectSameResult(actual: SampleResult, solo: SampleResult): void {
    expect(actual.images).toEqual(solo.images);
    actual.stageEnds.forEach((state, stage) => expect(state).toEqual(solo.stageEnds[stage]));
    expect(actual.modelCalls).toBe(solo.modelCalls);
  }

  it('runs N jobs in lockstep as calls of N requests, each job getting exactly its solo result', async () => {
    const jobs: Job[] = [
      { label: 1 },
      { label: 2, overrides: { cfgScale: 1.5, seed: 9 } },
      { label: 3, overrides: { classLabels: [3], noiseShift: 2 } },
      { label: 4, overrides: { cfgScale: 1 } },
    ];
    const solo = await soloRuns(jobs);
    const inner = new PerImageModel();
    const { model, batches } = batcher(inner);
    // Each job reaches the batcher through a few promise hops of its own (a per-job timing or
    // progress wrapper, say): calls still gather, since dispatch waits for the microtasks to drain.
    const viaHops = (hops: number): VelocityModel => ({
      async predict(...args) {
        for (let i = 0; i < hops; i++) await Promise.resolve();
        return model.predict(...args);
      },
    });
    const results = await Promise.all(jobs.map((job, i) => sample(jobOptions(viaHops(3 * i), job))));
    results.forEach((result, i) => expectSameResult(result, solo[i]!));

    // Every job makes 10 calls; merged, the model sees 10 calls of all 4 jobs rather than 40.
    const merged = batches.map((b) => b.requests);
    expect(merged).toEqual(new Array(10).fill(4));
    expect(inner.calls).toHaveLength(10);
    const mean = merged.reduce((a, b) => a + b, 0) / merged.length;
    expect(mean).toBe(4);
  });

  it('merges jobs of different lengths, solvers and guidance without starving any', async () => {
    const jobs: Job[] = [
      { label: 1, overrides: { steps: [1, 1, 1, 1] } },
      { label: 2, overrides: { steps: [6, 5, 4, 6] } },
      { label: 3, overrides: { solver: 'dopri5' } },
      { label: 4, overrides: { steps: [2, 2, 2, 2], cfgScale: 1 } },
    ];
    const solo = await soloRuns(jobs);
    const inner = new PerImageModel();
    const { model, batches } = batcher(inner, { maxBatch: 12 });
    const results = await Promise.all(jobs.map((job) => sample(jobOptions(model, job))));
    results.forEach((result, i) => expectSameResult(result, solo[i]!));
    expect(batches.every((b) => b.images <= 12)).toBe(true);
    // Fewer calls than all jobs' calls together: they were shared, across stages' resolutions too.
    const soloCalls = solo.reduce((n, r) => n + r.modelCalls, 0);
    expect(batches.reduce((n, b) => n + b.requests, 0)).toBe(soloCalls);
    expect(inner.calls.length).toBeLessThan(soloCalls);
    expect(new Set(inner.calls.map((c) => c.shape[2])).size).toBe(4);
  });

  it('lets a job join running ones at its next call, and one aborted leave while the others finish unchanged', async () => {
    // Job 4 starts after the others' 2nd call with one step fewer in stage 0, so from its first call
    // on it is at the others' resolution (a job at another stage shares no call with them).
    const jobs: Job[] = [{ label: 1 }, { label: 2 }, { label: 3 }, { label: 4, overrides: { steps: [1, 2, 2, 3] } }];
    const solo = await soloRuns(jobs);
    const inner = new PerImageModel();
    const { model } = batcher(inner);
    const leaving = new AbortController();
    let late: Promise<SampleResult> | undefined;
    let leftAfter = 0;
    const early = jobs.slice(0, 3).map((job) =>
      sample({
        ...jobOptions(model, job),
        ...(job.label === 2 && { signal: leaving.signal }),
        onStep: (p) => {
          if (job.label === 1 && p.stepsDone === 2) late = sample(jobOptions(model, jobs[3]!));
          if (job.label === 2 && p.stepsDone === 6) {
            leftAfter = p.stepsDone;
            leaving.abort(new Error('canceled by its user'));
          }
        },
      }),
    );
    const settled = await Promise.allSettled(early);
    expect(settled[1]).toEqual({ status: 'rejected', reason: new Error('canceled by its user') });
    expect(late).toBeDefined();
    const results = [settled[0], settled[2]].map((s) => (s as PromiseFulfilledResult<SampleResult>).value);
    expectSameResult(results[0]!, solo[0]!);
    expectSameResult(results[1]!, solo[2]!);
    expectSameResult(await late!, solo[3]!);

    // Which jobs each inner call served (the null label of guidance left out).
    const jobsPerCall = inner.calls.map((call) => [...new Set(call.labels.filter((label) => label !== 10))].sort((a, b) => a - b));
    expect(jobsPerCall).toEqual([
      ...new Array(2).fill([1, 2, 3]),
      ...new Array(4).fill([1, 2, 3, 4]), // job 4 joined at the 3rd call
      ...new Array(4).fill([1, 3, 4]), // job 2 left after its 6th
    ]);
    expect(leftAfter).toBe(6);
  });
});
