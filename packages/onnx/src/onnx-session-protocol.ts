import type { InferenceSession } from 'onnxruntime-node';

// The messages between OnnxModel (onnx-model.ts) and the thread that owns its onnxruntime session
// (onnx-session-worker.mjs, plain JavaScript that imports these types in JSDoc). One definition for
// both sides; tsc checks the worker script against it.

export type OnnxProvider = 'cpu' | 'cuda';
export type GraphOptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all';

/** What session to create: the thread's workerData, or a CreateRequest to a thread started ahead. */
export interface SessionWorkerData {
  /** Absolute path of the .onnx file (external weights are found beside it). */
  modelPath: string;
  /** The manifest's input and output names. */
  names: { x: string; timestep: string; classLabels: string; velocity: string };
  provider: OnnxProvider;
  deviceId: number;
  fallbackToCpu: boolean;
  /** Resolved by OnnxModel: never 0. */
  intraOpNumThreads: number;
  /** 0 = onnxruntime's default. */
  interOpNumThreads: number;
  graphOptimizationLevel: GraphOptimizationLevel;
  /** A CPU session's saved prepacked form (session-cache.ts): `dir/key/`; null = none. */
  sessionCache: { dir: string; key: string } | null;
}

/**
 * What the session cache did: not used, the saved session was loaded, the session was made from
 * the model and saved for next time, or the cache could not be used (`sessionCacheProblem` says why;
 * the session was made from the model all the same).
 */
export type SessionCacheOutcome = 'off' | 'loaded' | 'saved' | 'unusable';

/** parent -> thread: one forward pass; the buffers are transferred. */
export interface RunRequest {
  type: 'run';
  id: number;
  shape: [number, number, number, number];
  /** float32 values of x, exactly shape's product of them. */
  x: ArrayBuffer;
  /** float32 [B] */
  timestep: ArrayBuffer;
  /** int64 [B] */
  classLabels: ArrayBuffer;
}

/** parent -> thread: drop queued runs, release the session after the current run, end. */
export interface DisposeRequest {
  type: 'dispose';
}

/** parent -> a thread started without workerData (session-thread.ts): the session to create. */
export interface CreateRequest {
  type: 'create';
  config: SessionWorkerData;
}

/** parent -> a thread started ahead that no load took: end. */
export interface DiscardRequest {
  type: 'discard';
}

export type ParentMessage = CreateRequest | DiscardRequest | RunRequest | DisposeRequest;

/** thread -> parent: the session exists. */
export interface ReadyMessage {
  type: 'ready';
  /** The provider actually in use. */
  provider: OnnxProvider;
  /** Why CUDA was not used, when it fell back to the CPU. */
  fallbackReason: string | null;
  sessionCache: SessionCacheOutcome;
  sessionCacheProblem: string | null;
  inputNames: readonly string[];
  outputNames: readonly string[];
  inputMetadata: readonly InferenceSession.ValueMetadata[];
  outputMetadata: readonly InferenceSession.ValueMetadata[];
}

export type WorkerMessage =
  | ReadyMessage
  | { type: 'load-error'; message: string }
  /** `velocity` is transferred. */
  | { type: 'result'; id: number; velocity: ArrayBuffer; dims: number[]; runMs: number }
  | { type: 'run-error'; id: number; message: string }
  | { type: 'disposed'; releaseError?: string };
