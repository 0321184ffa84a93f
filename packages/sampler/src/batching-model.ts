import type { Shape4, VelocityModel } from './model.ts';

// Continuous batching behind the model interface. Every job runs its own sample() against one
// BatchingModel; the calls of different jobs that wait at the same moment with the same per-image
// shape [C,H,W] become one call of the inner model. Timesteps and labels are per image, so jobs at
// different steps, guidance scales, solvers and step counts can share a call. One inner call runs
// at a time (the session serializes anyway), and the calls that arrive meanwhile are what the next
// one is built from: a job joins at its next call and a finished or canceled job simply stops calling.
// A canceled job's call that still waits is withdrawn (predict's signal, or a view from withSignal):
// it would cost a whole row of a call whose answer nobody reads.

/** What one inner call did, for metrics. */
export interface BatchInfo {
  /** Image height: the stage resolution. */
  resolution: number;
  channels: number;
  /** Real images in the call, every merged request counted. */
  images: number;
  /** The batch the inner model ran: `images` plus padding rows. */
  padded: number;
  /** Requests merged into the call. */
  requests: number;
  /** How long the inner call took. */
  seconds: number;
}

export interface BatchingModelOptions {
  /** Real images per inner call, >= 1. A single request larger than this runs alone, never split. */
  maxBatch: number;
  /**
   * Padding buckets: an inner call of n images is padded up to the smallest size here >= n; one
   * larger than all of them runs unpadded. Unset: no padding. On CUDA, onnxruntime-node leaves
   * cuDNN's exhaustive convolution algorithm search on, so the first call at every new input shape
   * is slow, and warm-up can only afford a few shapes per resolution, while merged calls would
   * otherwise come in every size from 1 to maxBatch. Padding rows are wasted compute, traded for
   * shapes that were warmed up.
   */
  batchSizes?: readonly number[];
  /**
   * Rows x height x width per inner call at most, on top of maxBatch (a single request larger than
   * this still runs alone, whole). On a CPU, a row costs less inside a batch only while the batch's
   * activations fit in the caches: past some size per call (about 8 rows of 32 px on the machine we
   * measured), rows cost more in a batch than alone. Unset: no limit beyond maxBatch.
   */
  maxPixels?: number;
  /**
   * How many calls a waiting request may be passed over for calls of a smaller resolution before
   * its own shape goes next (default 4; 0 = strictly oldest first). See takeBatch for why.
   */
  maxPassOvers?: number;
  /** Called after each inner call that succeeded, once its requests are resolved. */
  onBatch?: (batch: BatchInfo) => void;
}

interface PendingRequest {
  /** "C,H,W": requests with the same key can share a call. */
  key: string;
  /** C x H x W: smaller goes first (takeBatch). */
  imageSize: number;
  /** Calls dispatched while this request waited. */
  passedOver: number;
  x: Float32Array;
  shape: Shape4;
  timestep: Float32Array;
  classLabels: BigInt64Array;
  resolve: (velocity: Float32Array) => void;
  reject: (error: unknown) => void;
  /** The caller's, when it gave one; `withdraw` listens to it while the request waits. */
  signal: AbortSignal | undefined;
  withdraw: (() => void) | undefined;
}

const DEFAULT_MAX_PASS_OVERS = 4;

function checkOptions(options: BatchingModelOptions): number[] | null {
  const { maxBatch, batchSizes, onBatch, maxPassOvers } = options;
  if (!Number.isSafeInteger(maxBatch) || maxBatch < 1) {
    throw new RangeError(`BatchingModel: maxBatch must be an integer >= 1, not ${String(maxBatch)}`);
  }
  if (options.maxPixels !== undefined && (!Number.isSafeInteger(options.maxPixels) || options.maxPixels < 1)) {
    throw new RangeError(`BatchingModel: maxPixels must be an integer >= 1, not ${String(options.maxPixels)}`);
  }
  if (maxPassOvers !== undefined && (!Number.isSafeInteger(maxPassOvers) || maxPassOvers < 0)) {
    throw new RangeError(`BatchingModel: maxPassOvers must be an integer >= 0, not ${String(maxPassOvers)}`);
  }
  if (onBatch !== undefined && typeof onBatch !== 'function') throw new RangeError('BatchingModel: onBatch must be a function');
  if (batchSizes === undefined) return null;
  if (!Array.isArray(batchSizes) || batchSizes.length === 0) {
    throw new RangeError('BatchingModel: batchSizes must list at least one batch size (leave it unset for no padding)');
  }
  for (const size of batchSizes) {
    if (!Number.isSafeInteger(size) || size < 1) {
      throw new RangeError(`BatchingModel: batchSizes must be integers >= 1, not ${JSON.stringify(batchSizes)}`);
    }
  }
  return [...new Set(batchSizes)].sort((a, b) => a - b);
}

function checkRequest(x: Float32Array, shape: Shape4, timestep: Float32Array, classLabels: BigInt64Array): void {
  const fail = (message: string): never => {
    throw new RangeError(`BatchingModel.predict: ${message}`);
  };
  if (!Array.isArray(shape) || shape.length !== 4 || !shape.every((n) => Number.isSafeInteger(n) && n > 0)) {
    fail(`shape must be 4 positive integers [batch, channels, height, width], not ${JSON.stringify(shape)}`);
  }
  const [batch, channels, height, width] = shape;
  const size = batch * channels * height * width;
  if (x.length !== size) fail(`x has ${x.length} values but shape [${shape.join(', ')}] needs ${size}`);
  if (timestep.length !== batch) fail(`timestep has ${timestep.length} values for a batch of ${batch}`);
  if (classLabels.length !== batch) fail(`classLabels has ${classLabels.length} values for a batch of ${batch}`);
}

/** What a request whose caller aborted rejects with; the caller's reason is its cause. */
function abortError(signal: AbortSignal, when: string): DOMException {
  return new DOMException(`BatchingModel.predict: aborted by its caller ${when}`, { name: 'AbortError', cause: signal.reason });
}

/** The requests of one inner call, end to end in arrival order, then copies of the last image. */
function concatenate(requests: readonly PendingRequest[], padded: number) {
  const [, channels, height, width] = (requests[0] as PendingRequest).shape;
  const perImage = channels * height * width;
  const x = new Float32Array(padded * perImage);
  const timestep = new Float32Array(padded);
  const classLabels = new BigInt64Array(padded);
  let row = 0;
  for (const request of requests) {
    x.set(request.x, row * perImage);
    timestep.set(request.timestep, row);
    classLabels.set(request.classLabels, row);
    row += request.shape[0];
  }
  // Padding repeats a real input rather than zeros: the model sees nothing it would not see anyway.
  const last = row - 1;
  for (; row < padded; row++) {
    x.copyWithin(row * perImage, last * perImage, (last + 1) * perImage);
    timestep[row] = timestep[last] as number;
    classLabels[row] = classLabels[last] as bigint;
  }
  const shape: Shape4 = [padded, channels, height, width];
  return { x, shape, timestep, classLabels };
}

/** Resolves a dispatched request with its rows, unless its caller aborted meanwhile: then nobody wants them. */
function answer(request: PendingRequest, rows: () => Float32Array): void {
  if (request.signal?.aborted) request.reject(abortError(request.signal, 'while its call ran'));
  else request.resolve(rows());
}

/**
 * A VelocityModel that merges concurrent calls into calls of `inner`.
 *
 * When the inner model is free, the next call is built around one leading request (see takeBatch),
 * adding the waiting requests of its shape in arrival order that still fit in `maxBatch`. A request
 * that does not fit does not hold back later, smaller ones (it cannot go in this call either way).
 *
 * Inputs are read when their call is dispatched, so a caller leaves them untouched until its
 * promise settles (the sampler does). Each caller gets a fresh velocity array of its own.
 *
 * A request whose `signal` aborts while it waits leaves the queue and rejects with an AbortError at
 * once, never reaching the inner model; once dispatched, its call runs to the end for the others in
 * it, and its own rows are dropped (it rejects the same way). The sampler calls VelocityModel's
 * four-argument predict, so a job hands it `withSignal(signal)`, which passes the signal along.
 */
export class BatchingModel implements VelocityModel {
  readonly maxBatch: number;
  /** Padding buckets, ascending; null when calls are not padded. */
  readonly batchSizes: readonly number[] | null;
  private readonly inner: VelocityModel;
  private readonly onBatch: ((batch: BatchInfo) => void) | undefined;
  private readonly maxPassOvers: number;
  private readonly maxPixels: number;
  /** Arrival order. */
  private queue: PendingRequest[] = [];
  private running = false;
  private dispatchScheduled = false;

  constructor(inner: VelocityModel, options: BatchingModelOptions) {
    this.batchSizes = checkOptions(options);
    this.inner = inner;
    this.maxBatch = options.maxBatch;
    this.onBatch = options.onBatch;
    this.maxPassOvers = options.maxPassOvers ?? DEFAULT_MAX_PASS_OVERS;
    this.maxPixels = options.maxPixels ?? Number.POSITIVE_INFINITY;
  }

  /** Requests waiting for the inner model, not counting the call in flight. */
  get pending(): number {
    return this.queue.length;
  }

  predict(x: Float32Array, shape: Shape4, timestep: Float32Array, classLabels: BigInt64Array, signal?: AbortSignal): Promise<Float32Array> {
    try {
      checkRequest(x, shape, timestep, classLabels);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    if (signal?.aborted) return Promise.reject(abortError(signal, 'before the call'));
    return new Promise<Float32Array>((resolve, reject) => {
      const key = `${shape[1]},${shape[2]},${shape[3]}`;
      const request: PendingRequest = { key, imageSize: shape[1] * shape[2] * shape[3], passedOver: 0, x, shape, timestep, classLabels, resolve, reject, signal, withdraw: undefined };
      if (signal) {
        request.withdraw = () => {
          this.queue = this.queue.filter((waiting) => waiting !== request);
          reject(abortError(signal, 'while its call waited'));
        };
        signal.addEventListener('abort', request.withdraw, { once: true });
      }
      this.queue.push(request);
      this.scheduleDispatch();
    });
  }

  /** This model for one caller (a job): every call passes `signal`, so an abort withdraws its waiting call. */
  withSignal(signal: AbortSignal): VelocityModel {
    return { predict: (x, shape, timestep, classLabels) => this.predict(x, shape, timestep, classLabels, signal) };
  }

  /**
   * Dispatches on a later macrotask, never at once. Jobs whose calls were answered together call
   * again from promise continuations, which all run before the next macrotask; dispatching on the
   * first of them would send it alone and leave the rest to queue behind it, so that N jobs in
   * lockstep would make calls of 1, N-1, 1, N-1 instead of N, N. setImmediate waits for exactly
   * that microtask drain and no longer (no timer, no added latency worth measuring).
   */
  private scheduleDispatch(): void {
    if (this.running || this.dispatchScheduled || this.queue.length === 0) return;
    this.dispatchScheduled = true;
    setImmediate(() => {
      this.dispatchScheduled = false;
      if (this.running || this.queue.length === 0) return;
      this.running = true;
      void this.run(this.takeBatch()).finally(() => {
        this.running = false;
        this.scheduleDispatch();
      });
    });
  }

  /**
   * The next call: a leading request and the waiting requests of its shape that fit, removed from
   * the queue. Only calls of one shape merge, and jobs at different stages of the cascade never
   * share one: served oldest first, jobs that started a few calls apart would stay apart for good,
   * taking turns. So the smallest resolution leads: a job that is behind runs its cheap low-resolution
   * calls while the jobs ahead wait, catches up with them at their stage and shares their calls from
   * then on. The wait is short (those calls are the cheap ones) and bounded: a request passed over
   * `maxPassOvers` times leads the next call, oldest first, so no job, however long its stages
   * (Dopri5), can hold another back for more than that many calls in a row.
   */
  private takeBatch(): PendingRequest[] {
    let leader = this.queue[0] as PendingRequest;
    if (leader.passedOver < this.maxPassOvers) {
      for (const request of this.queue) if (request.imageSize < leader.imageSize) leader = request;
    }
    const rowLimit = this.rowLimit(leader);
    const batch: PendingRequest[] = [leader];
    const waiting: PendingRequest[] = [];
    let images = leader.shape[0];
    for (const request of this.queue) {
      if (request === leader) continue;
      if (request.key === leader.key && images + request.shape[0] <= rowLimit) {
        batch.push(request);
        images += request.shape[0];
      } else {
        request.passedOver++;
        waiting.push(request);
      }
    }
    this.queue = waiting;
    // Dispatched: an abort now only drops the request's rows when the call returns (run).
    for (const request of batch) if (request.withdraw) request.signal?.removeEventListener('abort', request.withdraw);
    return batch;
  }

  /** Rows a call of `request`'s shape may hold: maxBatch, and maxPixels at its resolution. */
  private rowLimit(request: PendingRequest): number {
    return Math.min(this.maxBatch, Math.floor(this.maxPixels / (request.shape[2] * request.shape[3])));
  }

  /** The smallest bucket that holds `images` within the call's row limit; `images` when none does. */
  private paddedSize(images: number, rowLimit: number): number {
    return this.batchSizes?.find((size) => size >= images && size <= Math.max(rowLimit, images)) ?? images;
  }

  private async run(requests: PendingRequest[]): Promise<void> {
    const first = requests[0] as PendingRequest;
    const images = requests.reduce((n, request) => n + request.shape[0], 0);
    const padded = this.paddedSize(images, this.rowLimit(first));
    // Alone and unpadded, the caller's arrays go through as they are and the answer comes back as is.
    const passThrough = requests.length === 1 && padded === images;
    const started = performance.now();
    let seconds: number;
    try {
      // Inside the try: a failure to build the call (memory) answers its requests too.
      const call = passThrough ? first : concatenate(requests, padded);
      const velocity = await this.inner.predict(call.x, call.shape, call.timestep, call.classLabels);
      seconds = (performance.now() - started) / 1000;
      if (passThrough) {
        answer(first, () => velocity);
      } else {
        if (velocity.length % padded !== 0) {
          throw new RangeError(`BatchingModel: the inner model returned ${velocity.length} values for a batch of ${padded}`);
        }
        const perImage = velocity.length / padded;
        let row = 0;
        for (const request of requests) {
          const start = row * perImage;
          answer(request, () => velocity.slice(start, start + request.shape[0] * perImage));
          row += request.shape[0];
        }
      }
    } catch (error) {
      for (const request of requests) request.reject(error);
      return;
    }
    const [, channels, resolution] = first.shape;
    try {
      this.onBatch?.({ resolution, channels, images, padded, requests: requests.length, seconds });
    } catch (error) {
      // The requests are answered; a failing metrics callback must not stop the batcher (nor the process).
      process.emitWarning(`BatchingModel: onBatch failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
}
