import { Worker } from 'node:worker_threads';
import type { SessionWorkerData } from './onnx-session-protocol.ts';

// How the thread that owns an onnxruntime session starts (onnx-session-worker.mjs). A one-shot
// command can start one ahead, before it has even imported what reads its arguments and the
// model folder: starting a thread and loading onnxruntime-node into it takes ~40 ms on a small
// machine, which then overlap the command's own imports instead of following them. Such a thread
// waits for its session's description ('create'); OnnxModel.load takes it, or starts its own.
// Nothing here imports more than node:worker_threads, so that starting one ahead costs nothing.

const WORKER_URL = new URL('./onnx-session-worker.mjs', import.meta.url);

let spare: { worker: Worker; exited: boolean } | null = null;

/**
 * Starts a session thread now, for the next OnnxModel.load in this process to take, and returns
 * its threadId (OnnxModel.threadId tells which thread a model got). Unused, it does not keep the
 * process alive; discardSpareSessionThread ends it.
 */
export function startSessionThreadEarly(): number {
  if (spare !== null) return spare.worker.threadId;
  const started = { worker: new Worker(WORKER_URL, { name: 'onnxruntime session' }), exited: false };
  // A thread that failed before anyone took it is left alone: the load starts a thread of its own.
  started.worker.on('error', () => undefined);
  started.worker.once('exit', () => {
    started.exited = true;
  });
  started.worker.unref();
  spare = started;
  return started.worker.threadId;
}

/** How long a discarded thread may take to finish loading onnxruntime-node and end by itself. */
const DISCARD_WAIT_MS = 10_000;

/**
 * Ends a thread started ahead that no load took (a command that failed before loading its model).
 * The thread is asked to end and ends by itself once onnxruntime-node has loaded: terminated from
 * outside, or by the process's exit, while it loads that native library, it can take the process
 * down with it. Resolves true when there was one to end.
 */
export async function discardSpareSessionThread(): Promise<boolean> {
  const unused = spare;
  spare = null;
  if (unused === null || unused.exited) return false;
  const ended = new Promise<void>((resolve) => unused.worker.once('exit', () => resolve()));
  unused.worker.ref();
  unused.worker.postMessage({ type: 'discard' });
  const timer = setTimeout(() => void unused.worker.terminate(), DISCARD_WAIT_MS);
  await ended;
  clearTimeout(timer);
  return true;
}

/**
 * A session thread creating the session `config` describes: the one started ahead when there is
 * one still alive, otherwise a new one. Either answers 'ready' or 'load-error' when done.
 */
export function startSessionThread(config: SessionWorkerData, name: string): Worker {
  const ahead = spare;
  spare = null;
  if (ahead !== null && !ahead.exited) {
    ahead.worker.ref(); // as a new thread is: the load's caller may have nothing else keeping it alive
    ahead.worker.postMessage({ type: 'create', config });
    return ahead.worker;
  }
  return new Worker(WORKER_URL, { workerData: config, name });
}
