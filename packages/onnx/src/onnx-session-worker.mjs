// @ts-check
// The worker thread that owns one onnxruntime-node InferenceSession for OnnxModel (onnx-model.ts).
//
// onnxruntime-node's session creation and `run` are synchronous native calls (a `setImmediate`
// around them is all the asynchrony there is), so whichever thread calls them stops for the whole
// forward pass. Running them here keeps the caller's event loop free for HTTP, SSE and timers.
//
// Plain JavaScript on purpose: worker threads start with Node's own loader, not vitest's or tsx's
// TypeScript one. Its message types are onnx-session-protocol.ts's, which tsc checks it against.
//
// Protocol. The session is created from `workerData` as soon as the thread starts; a thread started
// ahead without workerData (session-thread.ts) loads onnxruntime-node and waits for
//   parent -> worker  {type:'create', config}
// to create it from, or {type:'discard'}, on which it ends. Then:
//   worker -> parent  {type:'ready', ...} or {type:'load-error', message}
//   parent -> worker  {type:'run', id, shape, x, timestep, classLabels}   (buffers transferred)
//   worker -> parent  {type:'result', id, velocity, dims, runMs}          (velocity transferred)
//                  or {type:'run-error', id, message}
//   parent -> worker  {type:'dispose'}: drop queued runs, release the session after the current
//                     run, answer {type:'disposed', releaseError?}, and let the thread end.
// Runs execute strictly one after another, in the order they arrived. The parent never terminates
// this thread while a run may be in progress: onnxruntime-node aborts the whole process (seen in 1.30) when
// a thread is terminated inside `session.run`.

import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parentPort, threadId, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';

/**
 * @typedef {import('./onnx-session-protocol.ts').OnnxProvider} Provider
 * @typedef {import('./onnx-session-protocol.ts').SessionWorkerData} SessionWorkerData
 * @typedef {import('./onnx-session-protocol.ts').RunRequest} RunRequest
 * @typedef {import('./onnx-session-protocol.ts').ParentMessage} ParentMessage
 * @typedef {import('./onnx-session-protocol.ts').ReadyMessage} ReadyMessage
 * @typedef {import('./onnx-session-protocol.ts').WorkerMessage} WorkerMessage
 * @typedef {import('./onnx-session-protocol.ts').SessionCacheOutcome} SessionCacheOutcome
 * @typedef {{ session: import('onnxruntime-node').InferenceSession, cache: SessionCacheOutcome, cacheProblem: string | null }} CpuSession
 */

if (!parentPort) throw new Error('onnx-session-worker.mjs must be started as a worker thread');
const port = parentPort;
/**
 * The session to create, for a thread started ahead; a thread nobody took is told 'discard' and
 * ends here, in JavaScript, never terminated from outside while it loads onnxruntime's library.
 * @returns {Promise<SessionWorkerData>}
 */
function createRequest() {
  return new Promise((resolve) => {
    port.once('message', (/** @type {ParentMessage} */ message) => {
      if (message.type === 'create') resolve(message.config);
      else process.exit(0);
    });
  });
}

const config = workerData === undefined ? await createRequest() : /** @type {SessionWorkerData} */ (workerData);

/** Sends a message, transferring `transfer`; one line per error message. */
function post(/** @type {WorkerMessage} */ message, /** @type {ArrayBuffer[]} */ transfer = []) {
  port.postMessage(message, transfer);
}

/** One line: onnxruntime's messages sometimes carry newlines and trailing whitespace. */
function oneLine(/** @type {unknown} */ error) {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\s+/g, ' ').trim();
}

/**
 * @param {'cpu' | 'cuda'} provider
 * @param {Record<string, string>} [sessionEntries] more `session.*` configuration entries
 * @returns {import('onnxruntime-node').InferenceSession.SessionOptions}
 */
function sessionOptions(provider, sessionEntries = {}) {
  /** @type {import('onnxruntime-node').InferenceSession.SessionOptions} */
  const options = {
    executionProviders: provider === 'cuda' ? [{ name: 'cuda', deviceId: config.deviceId }] : ['cpu'],
    graphOptimizationLevel: config.graphOptimizationLevel,
    // ORT's pool threads spin after each run by default; between our runs the caller's own thread
    // needs those cores (guidance, solver updates, the next request's I/O).
    extra: { session: { intra_op: { allow_spinning: '0' }, ...sessionEntries } },
    intraOpNumThreads: config.intraOpNumThreads,
  };
  if (config.interOpNumThreads > 0) options.interOpNumThreads = config.interOpNumThreads;
  return options;
}

/** Removes a folder of ours, ignoring every failure (the folder may never have been made). */
function removeQuietly(/** @type {string} */ path) {
  try {
    rmSync(path, { recursive: true, force: true });
  } catch {
    // Nothing to clean, or nothing we can clean; the cache entry is not used either way.
  }
}

/**
 * The CPU session, through the session cache when there is one (session-cache.ts): load the saved
 * prepacked form, or make the session from the model and save that form as it is made. Saving goes
 * to a folder of this thread's own, renamed into place whole, so two processes making the same
 * entry never mix their files; the one that loses the rename drops its copy. Whatever goes wrong
 * with the cache, the session is made from the model and the reason is reported, never thrown.
 * @returns {Promise<CpuSession>}
 */
async function createCpuSession() {
  const cache = config.sessionCache;
  if (cache === null) {
    return { session: await ort.InferenceSession.create(config.modelPath, sessionOptions('cpu')), cache: 'off', cacheProblem: null };
  }
  const entry = join(cache.dir, cache.key);
  const saved = join(entry, 'model.onnx');
  let problem;
  if (existsSync(saved)) {
    try {
      // The saved graph is already optimised at the level its key names: optimising it again
      // finds nothing to change and costs about a fifth of the load.
      const options = { ...sessionOptions('cpu'), graphOptimizationLevel: /** @type {const} */ ('disabled') };
      return { session: await ort.InferenceSession.create(saved, options), cache: 'loaded', cacheProblem: null };
    } catch (error) {
      problem = `the saved session ${entry} did not load (${oneLine(error)})`;
    }
  } else {
    const partial = `${entry}.partial-${process.pid}-${threadId}`;
    try {
      rmSync(partial, { recursive: true, force: true });
      mkdirSync(partial, { recursive: true });
      const options = sessionOptions('cpu', {
        optimized_model_external_initializers_file_name: 'model.onnx.data',
        optimized_model_external_initializers_min_size_in_bytes: '1024',
        save_external_prepacked_constant_initializers: '1',
      });
      options.optimizedModelFilePath = join(partial, 'model.onnx');
      // onnxruntime warns on stderr that the saved graph is for this machine only; the key says so.
      options.logSeverityLevel = 3;
      const session = await ort.InferenceSession.create(config.modelPath, options);
      try {
        renameSync(partial, entry);
      } catch {
        removeQuietly(partial); // another process saved this entry first
      }
      return { session, cache: 'saved', cacheProblem: null };
    } catch (error) {
      removeQuietly(partial);
      problem = `could not save the session under ${cache.dir} (${oneLine(error)})`;
    }
  }
  return { session: await ort.InferenceSession.create(config.modelPath, sessionOptions('cpu')), cache: 'unusable', cacheProblem: problem };
}

/**
 * Creates the one session of this worker. A CUDA attempt that fails creates no session, so the
 * CPU fallback is still the only session this worker ever holds (recreating sessions leaks
 * memory: microsoft/onnxruntime#25325).
 * @returns {Promise<CpuSession & { provider: Provider, fallbackReason: string | null }>}
 */
async function createSession() {
  if (config.provider === 'cuda') {
    // The parent has checked that the provider's files exist; why they fail to load, it says too.
    let reason;
    try {
      const session = await ort.InferenceSession.create(config.modelPath, sessionOptions('cuda'));
      return { session, provider: 'cuda', fallbackReason: null, cache: 'off', cacheProblem: null };
    } catch (error) {
      reason = `onnxruntime could not start the CUDA execution provider on device ${config.deviceId}: ${oneLine(error)}`;
    }
    if (!config.fallbackToCpu) throw new Error(`provider 'cuda' unavailable: ${reason}`);
    return { ...(await createCpuSession()), provider: 'cpu', fallbackReason: reason };
  }
  return { ...(await createCpuSession()), provider: 'cpu', fallbackReason: null };
}

/** @type {import('onnxruntime-node').InferenceSession | null} */
let session = null;
try {
  const created = await createSession();
  session = created.session;
  /** @type {ReadyMessage} */
  const ready = {
    type: 'ready',
    provider: created.provider,
    fallbackReason: created.fallbackReason,
    sessionCache: created.cache,
    sessionCacheProblem: created.cacheProblem,
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    inputMetadata: session.inputMetadata,
    outputMetadata: session.outputMetadata,
  };
  post(ready);
} catch (error) {
  // No session exists to release; closing the port lets the thread end.
  post({ type: 'load-error', message: oneLine(error) });
  port.close();
}

/**
 * @param {import('onnxruntime-node').InferenceSession} session
 * @param {RunRequest} request
 */
async function run(session, request) {
  const { id, shape } = request;
  const { names } = config;
  const batch = shape[0];
  try {
    const feeds = {
      [names.x]: new ort.Tensor('float32', new Float32Array(request.x), shape),
      [names.timestep]: new ort.Tensor('float32', new Float32Array(request.timestep), [batch]),
      [names.classLabels]: new ort.Tensor('int64', new BigInt64Array(request.classLabels), [batch]),
    };
    const start = performance.now();
    const outputs = await session.run(feeds, [names.velocity]);
    const runMs = performance.now() - start;
    const velocity = outputs[names.velocity];
    if (!velocity || !('type' in velocity) || velocity.type !== 'float32') {
      throw new Error(`output '${names.velocity}' is ${velocity && 'type' in velocity ? velocity.type : 'missing'}, not float32`);
    }
    const data = /** @type {Float32Array} */ (velocity.data);
    // The binding gives each output its own ArrayBuffer; copy only if that ever changes.
    const owned = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice();
    const buffer = /** @type {ArrayBuffer} */ (owned.buffer);
    post({ type: 'result', id, velocity: buffer, dims: [...velocity.dims], runMs }, [buffer]);
  } catch (error) {
    post({ type: 'run-error', id, message: oneLine(error) });
  }
}

if (session) {
  const live = session;
  let closing = false;
  /** Runs chain on this promise so they never overlap, and dispose waits for the current one. */
  let queue = Promise.resolve();

  port.on('message', (/** @type {ParentMessage} */ message) => {
    if (message.type === 'run') {
      queue = queue.then(() => (closing ? undefined : run(live, message)));
    } else if (message.type === 'dispose' && !closing) {
      closing = true;
      queue = queue.then(async () => {
        try {
          await live.release();
          post({ type: 'disposed' });
        } catch (error) {
          post({ type: 'disposed', releaseError: oneLine(error) });
        }
        port.close();
      });
    }
  });
}
