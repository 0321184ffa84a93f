import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { cudaProviderNotInstalled, explainCudaProviderFailure } from './cuda-provider.ts';
import { sessionCacheKey } from './session-cache.ts';
import { startSessionThread } from './session-thread.ts';
import type { Shape4, VelocityModel } from '@pixelflow/sampler';
import type { ModelDir } from '@pixelflow/formats';
import type {
  GraphOptimizationLevel,
  OnnxProvider,
  ReadyMessage,
  RunRequest,
  SessionCacheOutcome,
  SessionWorkerData,
  WorkerMessage,
} from './onnx-session-protocol.ts';

// The network on onnxruntime-node, behind the sampler's VelocityModel interface.
//
// onnxruntime-node creates sessions and runs them synchronously on the calling thread (a 372 ms
// forward pass is a 372 ms event-loop stall), which would freeze the API's HTTP, SSE and timers.
// So the session lives in a worker thread (onnx-session-worker.mjs) and this class only copies
// tensors across: inputs are copied once into fresh buffers that are then transferred, and the
// velocity comes back transferred, with no copy. The main thread never loads the native binding.

export type { GraphOptimizationLevel, OnnxProvider, SessionCacheOutcome } from './onnx-session-protocol.ts';

export interface OnnxModelOptions {
  /** Execution provider. Default 'cpu'. */
  provider?: OnnxProvider;
  /** CUDA device ordinal. Default 0. */
  deviceId?: number;
  /**
   * When CUDA cannot be used, run on the CPU instead of failing the load. Nothing is logged; the
   * model's `fellBack` and `fallbackReason` say what happened, for the caller to report. Default false.
   */
  fallbackToCpu?: boolean;
  /** Threads inside one operator; 0 or unset = defaultIntraOpThreads(), one per CPU. */
  intraOpNumThreads?: number;
  /** Threads across operators (parallel execution mode only); 0 or unset = onnxruntime's default. */
  interOpNumThreads?: number;
  /** Default 'all'. */
  graphOptimizationLevel?: GraphOptimizationLevel;
  /**
   * Folder for saved CPU sessions (session-cache.ts): the first load saves the optimised graph
   * with its prepacked weights there, later loads on this machine map it instead of prepacking
   * again. It takes about twice the model's size on disk. Unset: no cache. CUDA sessions never use it.
   */
  sessionCacheDir?: string;
}

export interface OnnxModelStats {
  /** Completed forward passes. */
  calls: number;
  /** Milliseconds spent inside `session.run`, measured in the worker; wall time minus this is our overhead. */
  runMs: number;
}

/** The model could not be loaded, disagrees with its manifest, or its worker failed; one-line message. */
export class OnnxModelError extends Error {
  override name = 'OnnxModelError';
}

interface PendingRun {
  shape: Shape4;
  resolve: (velocity: Float32Array) => void;
  reject: (error: Error) => void;
}

const GRAPH_OPTIMIZATION_LEVELS: readonly GraphOptimizationLevel[] = ['disabled', 'basic', 'extended', 'all'];

/**
 * Threads per operator when none are asked for: one per CPU this process may use. Not
 * onnxruntime's own default, which counts physical cores from the CPU topology and chose 1 of the
 * 2 CPUs of a VM we measured, running every call at half speed.
 */
export function defaultIntraOpThreads(): number {
  return availableParallelism();
}

function resolveOptions(options: OnnxModelOptions): Omit<SessionWorkerData, 'modelPath' | 'names' | 'sessionCache'> {
  const {
    provider = 'cpu',
    deviceId = 0,
    fallbackToCpu = false,
    intraOpNumThreads = 0,
    interOpNumThreads = 0,
    graphOptimizationLevel = 'all',
  } = options;
  if (provider !== 'cpu' && provider !== 'cuda') {
    throw new OnnxModelError(`provider must be 'cpu' or 'cuda', not ${JSON.stringify(provider)}`);
  }
  const counts = { deviceId, intraOpNumThreads, interOpNumThreads };
  for (const [name, value] of Object.entries(counts)) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new OnnxModelError(`${name} must be an integer >= 0, not ${String(value)}`);
    }
  }
  if (typeof fallbackToCpu !== 'boolean') throw new OnnxModelError('fallbackToCpu must be true or false');
  if (!GRAPH_OPTIMIZATION_LEVELS.includes(graphOptimizationLevel)) {
    throw new OnnxModelError(
      `graphOptimizationLevel must be one of ${GRAPH_OPTIMIZATION_LEVELS.join(', ')}, not ${JSON.stringify(graphOptimizationLevel)}`,
    );
  }
  return {
    provider,
    deviceId,
    fallbackToCpu,
    intraOpNumThreads: intraOpNumThreads === 0 ? defaultIntraOpThreads() : intraOpNumThreads,
    interOpNumThreads,
    graphOptimizationLevel,
  };
}

/**
 * onnxruntime reports a provider that cannot load as "Failed to load shared library", naming
 * nothing (the library it could not find goes to its own log on stderr): add what is missing.
 */
function withCudaDiagnosis(error: Error): Error {
  const diagnosis = /Failed to load shared library/i.test(error.message) ? explainCudaProviderFailure() : null;
  return diagnosis === null ? error : new OnnxModelError(`${error.message} (${diagnosis})`);
}

function describeDims(shape: readonly (number | string)[]): string {
  return `[${shape.join(', ')}]`;
}

/**
 * Every way the session's signature contradicts pixelflow.json, each naming the manifest field to
 * look at. Symbolic dimensions (batch, height, width) are not checked; static ones are.
 */
function manifestMismatches(model: ModelDir, ready: Pick<ReadyMessage, 'inputMetadata' | 'outputMetadata'>): string[] {
  const { onnx, architecture } = model.manifest;
  const problems: string[] = [];
  const inputs = new Map(ready.inputMetadata.map((m) => [m.name, m]));
  const outputs = new Map(ready.outputMetadata.map((m) => [m.name, m]));
  const list = (names: Iterable<string>): string => [...names].map((n) => `'${n}'`).join(', ') || 'none';

  const inChannels = { field: 'architecture.in_channels', value: architecture.in_channels };
  const outChannels = { field: 'architecture.out_channels', value: architecture.out_channels };
  const expectations = [
    { field: 'onnx.inputs.x', kind: 'input', table: inputs, name: onnx.inputs.x, type: 'float32', rank: 4, channels: inChannels },
    { field: 'onnx.inputs.timestep', kind: 'input', table: inputs, name: onnx.inputs.timestep, type: 'float32', rank: 1, channels: null },
    { field: 'onnx.inputs.class_labels', kind: 'input', table: inputs, name: onnx.inputs.class_labels, type: 'int64', rank: 1, channels: null },
    { field: 'onnx.outputs.velocity', kind: 'output', table: outputs, name: onnx.outputs.velocity, type: 'float32', rank: 4, channels: outChannels },
  ] as const;

  for (const e of expectations) {
    const meta = e.table.get(e.name);
    if (!meta) {
      problems.push(`${e.field} is '${e.name}' but the model has no such ${e.kind} (its ${e.kind}s: ${list(e.table.keys())})`);
      continue;
    }
    if (!meta.isTensor) {
      problems.push(`${e.field}: ${e.kind} '${e.name}' is not a tensor`);
      continue;
    }
    if (meta.type !== e.type) problems.push(`${e.field}: ${e.kind} '${e.name}' is ${meta.type}, expected ${e.type}`);
    // An empty shape means onnxruntime does not know it; only a known one can disagree.
    if (meta.shape.length > 0 && meta.shape.length !== e.rank) {
      problems.push(`${e.field}: ${e.kind} '${e.name}' has shape ${describeDims(meta.shape)}, expected rank ${e.rank}`);
      continue;
    }
    const channels = meta.shape[1];
    if (e.channels && typeof channels === 'number' && channels !== e.channels.value) {
      problems.push(
        `${e.channels.field} is ${e.channels.value} but ${e.kind} '${e.name}' has ${channels} channels ` +
          `(shape ${describeDims(meta.shape)})`,
      );
    }
  }

  const named = new Set<string>([onnx.inputs.x, onnx.inputs.timestep, onnx.inputs.class_labels]);
  const unnamed = [...inputs.keys()].filter((name) => !named.has(name));
  if (unnamed.length > 0) {
    problems.push(`the model has input${unnamed.length > 1 ? 's' : ''} ${list(unnamed)} that onnx.inputs does not name`);
  }
  return problems;
}

/**
 * Waits for the worker's first word: its session is ready, or it could not be created, or the
 * thread itself failed (a broken install of onnxruntime-node, say).
 */
function waitUntilReady(worker: Worker, modelPath: string): Promise<ReadyMessage> {
  return new Promise((resolve, reject) => {
    const settle = (finish: () => void): void => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
      finish();
    };
    const onMessage = (message: WorkerMessage): void => {
      if (message.type === 'ready') settle(() => resolve(message));
      else if (message.type === 'load-error') {
        settle(() => reject(new OnnxModelError(`${modelPath}: cannot create an onnxruntime session: ${message.message}`)));
      }
    };
    const onError = (error: Error): void => {
      settle(() => reject(new OnnxModelError(`${modelPath}: the onnxruntime worker thread failed: ${error.message}`)));
    };
    const onExit = (code: number): void => {
      settle(() => reject(new OnnxModelError(`${modelPath}: the onnxruntime worker thread exited (code ${code}) before its session was ready`)));
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
  });
}

function checkPredictArguments(
  model: ModelDir,
  x: Float32Array,
  shape: Shape4,
  timestep: Float32Array,
  classLabels: BigInt64Array,
): void {
  const fail = (message: string): never => {
    throw new RangeError(`OnnxModel.predict: ${message}`);
  };
  if (!(x instanceof Float32Array)) fail('x must be a Float32Array');
  if (!(timestep instanceof Float32Array)) fail('timestep must be a Float32Array');
  if (!(classLabels instanceof BigInt64Array)) fail('classLabels must be a BigInt64Array');
  if (!Array.isArray(shape) || shape.length !== 4 || !shape.every((n) => Number.isSafeInteger(n) && n > 0)) {
    fail(`shape must be 4 positive integers [batch, channels, height, width], not ${JSON.stringify(shape)}`);
  }
  const [batch, channels, height, width] = shape;
  const { architecture, classes } = model.manifest;
  if (channels !== architecture.in_channels) fail(`shape ${describeDims(shape)} has ${channels} channels, the model takes ${architecture.in_channels}`);
  if (height % architecture.patch_size !== 0 || width % architecture.patch_size !== 0) {
    fail(`height and width of shape ${describeDims(shape)} must be multiples of the patch size ${architecture.patch_size}`);
  }
  if (x.length !== batch * channels * height * width) {
    fail(`x has ${x.length} values but shape ${describeDims(shape)} needs ${batch * channels * height * width}`);
  }
  if (timestep.length !== batch) fail(`timestep has ${timestep.length} values for a batch of ${batch}`);
  if (classLabels.length !== batch) fail(`classLabels has ${classLabels.length} values for a batch of ${batch}`);
  // An out-of-range label indexes past the class embedding table: an error on the CPU provider,
  // but not necessarily on CUDA. B comparisons are cheap next to a forward pass.
  for (const label of classLabels) {
    if (label < 0n || label > BigInt(classes.null_label)) {
      fail(`class label ${label} is outside 0..${classes.null_label} (${classes.null_label} = unconditional)`);
    }
  }
}

/**
 * A converted PixelFlow model running on onnxruntime-node in a worker thread.
 *
 * Concurrent `predict` calls are queued and run one at a time in call order, each resolving with its
 * own velocity. Inputs are copied at the call, so the caller may reuse them as soon as `predict`
 * returns. If the worker thread dies, every pending and later call rejects with OnnxModelError.
 * Call `dispose` when done; an idle model does not keep the process alive.
 */
export class OnnxModel implements VelocityModel {
  readonly model: ModelDir;
  /** The provider actually in use. */
  readonly provider: OnnxProvider;
  /** True when CUDA was asked for, could not be used, and `fallbackToCpu` let it run on the CPU. */
  readonly fellBack: boolean;
  /** Why CUDA was not used, when `fellBack`; null otherwise. */
  readonly fallbackReason: string | null;
  /** Threads onnxruntime runs one operator on (see OnnxModelOptions.intraOpNumThreads). */
  readonly intraOpThreads: number;
  /** The worker thread that owns the session (its threadId; see startSessionThreadEarly). */
  readonly threadId: number;
  /** What the session cache did (OnnxModelOptions.sessionCacheDir). */
  readonly sessionCache: SessionCacheOutcome;
  /** Why the cache could not be used, when `sessionCache` is 'unusable'; null otherwise. */
  readonly sessionCacheProblem: string | null;

  // A TS-private field rather than #private so that a test can kill the thread to check recovery.
  private readonly worker: Worker;
  private readonly pending = new Map<number, PendingRun>();
  private nextId = 0;
  private calls = 0;
  private runMs = 0;
  /** Set once the worker is gone or going; every later predict rejects with it. */
  private closedError: OnnxModelError | null = null;
  private disposing: Promise<void> | null = null;
  private exited = false;
  private onDisposed: ((releaseError: string | undefined) => void) | null = null;

  private constructor(model: ModelDir, worker: Worker, ready: ReadyMessage, fallbackReason: string | null, intraOpThreads: number) {
    this.model = model;
    this.intraOpThreads = intraOpThreads;
    this.threadId = worker.threadId;
    this.sessionCache = ready.sessionCache;
    this.sessionCacheProblem = ready.sessionCacheProblem;
    this.worker = worker;
    this.provider = ready.provider;
    this.fallbackReason = fallbackReason;
    this.fellBack = fallbackReason !== null;
    worker.on('message', (message: WorkerMessage) => this.handleMessage(message));
    worker.on('error', (error: Error) => {
      this.fail(`the onnxruntime worker thread for ${model.modelPath} failed: ${error.message}`);
    });
    worker.on('exit', (code: number) => {
      this.exited = true;
      this.fail(`the onnxruntime worker thread for ${model.modelPath} exited unexpectedly (code ${code})`);
      this.onDisposed?.(undefined);
    });
    worker.on('messageerror', (error: Error) => {
      this.fail(`a message from the onnxruntime worker thread could not be read: ${error.message}`);
    });
    // Only in-flight predictions keep the process alive (see predict).
    worker.unref();
  }

  /**
   * Creates the session in a new worker thread and checks it against the manifest before any model
   * call. Throws OnnxModelError with a one-line message.
   */
  static async load(model: ModelDir, options: OnnxModelOptions = {}): Promise<OnnxModel> {
    const { onnx } = model.manifest;
    const resolved = resolveOptions(options);
    // A provider that is not installed at all is told apart without asking onnxruntime, which
    // would log three multi-line errors to stderr before failing with a message naming nothing.
    const notInstalled = resolved.provider === 'cuda' ? cudaProviderNotInstalled() : null;
    if (notInstalled !== null && !resolved.fallbackToCpu) {
      throw new OnnxModelError(`${model.modelPath}: provider 'cuda' unavailable: ${notInstalled}`);
    }
    const workerData: SessionWorkerData = {
      modelPath: model.modelPath,
      names: {
        x: onnx.inputs.x,
        timestep: onnx.inputs.timestep,
        classLabels: onnx.inputs.class_labels,
        velocity: onnx.outputs.velocity,
      },
      ...resolved,
      ...(notInstalled !== null && { provider: 'cpu' }),
      sessionCache:
        options.sessionCacheDir === undefined
          ? null
          : { dir: options.sessionCacheDir, key: sessionCacheKey(model, resolved.graphOptimizationLevel) },
    };
    const worker = startSessionThread(workerData, `onnxruntime ${model.manifest.name}`);
    let ready: ReadyMessage;
    try {
      ready = await waitUntilReady(worker, model.modelPath);
    } catch (error) {
      await worker.terminate();
      throw workerData.provider === 'cuda' ? withCudaDiagnosis(error as Error) : error;
    }
    const fallbackReason = notInstalled ?? (ready.fallbackReason === null ? null : withCudaDiagnosis(new Error(ready.fallbackReason)).message);
    const instance = new OnnxModel(model, worker, ready, fallbackReason, resolved.intraOpNumThreads);
    const problems = manifestMismatches(model, ready);
    if (problems.length > 0) {
      await instance.dispose();
      throw new OnnxModelError(`${model.dir}: pixelflow.json disagrees with ${model.manifest.model_file}: ${problems.join('; ')}`);
    }
    return instance;
  }

  predict(x: Float32Array, shape: Shape4, timestep: Float32Array, classLabels: BigInt64Array): Promise<Float32Array> {
    try {
      checkPredictArguments(this.model, x, shape, timestep, classLabels);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    if (this.closedError) return Promise.reject(this.closedError);

    // slice() copies into fresh buffers we may transfer: the caller's own stay attached and untouched.
    const request: RunRequest = {
      type: 'run',
      id: this.nextId++,
      shape: [shape[0], shape[1], shape[2], shape[3]],
      x: x.slice().buffer,
      timestep: timestep.slice().buffer,
      classLabels: classLabels.slice().buffer,
    };
    return new Promise<Float32Array>((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(request.id, { shape: request.shape, resolve, reject });
      this.worker.postMessage(request, [request.x, request.timestep, request.classLabels]);
    });
  }

  stats(): OnnxModelStats {
    return { calls: this.calls, runMs: this.runMs };
  }

  /**
   * Releases the session and ends the worker thread. Predictions still pending reject; later ones
   * reject too. Waits for a forward pass already running (it cannot be interrupted). Idempotent.
   *
   * Await it before `process.exit()` while a prediction may be running: exit terminates worker
   * threads, and onnxruntime-node (seen in 1.30) aborts the whole process (SIGABRT, "terminate called after
   * throwing an instance of 'Napi::Error'") when its thread is terminated during a forward pass.
   * For that reason this class never terminates a thread that may be inside `session.run`.
   */
  dispose(): Promise<void> {
    this.disposing ??= this.shutDown();
    return this.disposing;
  }

  private async shutDown(): Promise<void> {
    this.fail(`OnnxModel for ${this.model.modelPath} has been disposed`);
    // Even a model closed by a worker error asks first: the thread may still be inside a run.
    if (!this.exited) {
      const released = new Promise<string | undefined>((resolve) => {
        this.onDisposed = resolve;
      });
      this.worker.postMessage({ type: 'dispose' });
      // The forward pass in progress finishes first; keep the process alive until then.
      this.worker.ref();
      const releaseError = await released;
      if (releaseError !== undefined) {
        await this.worker.terminate();
        throw new OnnxModelError(`${this.model.modelPath}: releasing the onnxruntime session failed: ${releaseError}`);
      }
    }
    await this.worker.terminate();
  }

  private handleMessage(message: WorkerMessage): void {
    switch (message.type) {
      case 'result': {
        const run = this.takePending(message.id);
        if (!run) return;
        this.calls += 1;
        this.runMs += message.runMs;
        const velocity = new Float32Array(message.velocity);
        const [batch, , height, width] = run.shape;
        const expected = [batch, this.model.manifest.architecture.out_channels, height, width];
        const size = expected.reduce((n, side) => n * side, 1);
        if (message.dims.length !== 4 || message.dims.some((d, i) => d !== expected[i]) || velocity.length !== size) {
          run.reject(
            new OnnxModelError(
              `${this.model.modelPath}: output '${this.model.manifest.onnx.outputs.velocity}' has shape ` +
                `${describeDims(message.dims)}, expected ${describeDims(expected)}`,
            ),
          );
        } else {
          run.resolve(velocity);
        }
        return;
      }
      case 'run-error': {
        this.takePending(message.id)?.reject(
          new OnnxModelError(`${this.model.modelPath}: onnxruntime failed to run the model: ${message.message}`),
        );
        return;
      }
      case 'disposed':
        this.onDisposed?.(message.releaseError);
        return;
      default:
        return;
    }
  }

  private takePending(id: number): PendingRun | undefined {
    const run = this.pending.get(id);
    this.pending.delete(id);
    if (this.pending.size === 0 && this.disposing === null) this.worker.unref();
    return run;
  }

  /** Closes the model for good: every pending and future predict rejects with this message. */
  private fail(message: string): void {
    this.closedError ??= new OnnxModelError(message);
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const run of pending) run.reject(this.closedError);
    if (this.disposing === null) this.worker.unref();
  }
}
