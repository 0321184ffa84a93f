import type { Readable } from 'node:stream';

// The worker writes a job's images and stage previews to a result store and the API serves them.
// Keys are `<job id>/<name>` (e.g. `<job id>/image-0.png`) in every store: a folder's relative
// paths (local-result-store.ts), or object keys under a prefix (s3-result-store.ts). Records hold
// no store address: the API derives each key from the job id and the index.

/** What a store knows of an object without reading it. */
export interface StoredObject {
  /** Bytes. */
  size: number;
  /**
   * A strong HTTP validator of the object's content, quoted (`"…"`): stable while the object is
   * unchanged, the same from every API process reading the same store.
   */
  etag: string;
}

/** An object being read: its body streams, so nothing holds a whole file. */
export interface OpenedObject extends StoredObject {
  body: Readable;
}

export interface ResultStore {
  /** Stores `data` under `key`; readers see the whole object or nothing. */
  put(key: string, data: Uint8Array): Promise<void>;
  /** The whole object, or null when there is none (tests and tools; the API streams with open()). */
  get(key: string): Promise<Buffer | null>;
  /** The object as a stream with its size and validator, or null when there is none. */
  open(key: string): Promise<OpenedObject | null>;
  /** The object's size and validator, or null when there is none. */
  stat(key: string): Promise<StoredObject | null>;
  /** Deletes every object of one job. */
  deleteJob(jobId: string): Promise<void>;
  /**
   * A URL that GETs the object without credentials for `seconds`, where the store can make one
   * (S3); undefined for a store that cannot (a local folder).
   */
  presignedUrl?(key: string, seconds: number): Promise<string>;
  /** Checks at start-up that the store is usable; throws ResultStoreConfigError saying why not. */
  verify(): Promise<void>;
  /** Releases connections; the store is not used afterwards. */
  close(): void;
}

export class ResultKeyError extends Error {
  override name = 'ResultKeyError';
}

/**
 * The store could not be reached or failed (after its retries): the object may well be there, so
 * callers answer "try again later" (the API: 503), never "not found".
 */
export class ResultStoreUnavailableError extends Error {
  override name = 'ResultStoreUnavailableError';
}

/** The store is unusable as configured (found by verify() at start-up): one line saying why. */
export class ResultStoreConfigError extends Error {
  override name = 'ResultStoreConfigError';
}

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** `<job id>/<name>`, refusing anything that could leave the store's folder or prefix. */
export function resultKey(jobId: string, name: string): string {
  for (const segment of [jobId, name]) {
    if (!SEGMENT.test(segment) || segment.includes('..')) throw new ResultKeyError(`invalid result key segment '${segment}'`);
  }
  return `${jobId}/${name}`;
}

/** A key checked to be `<job id>/<name>` and nothing else. */
export function checkedKey(key: string): string {
  const [jobId, name, ...rest] = key.split('/');
  if (jobId === undefined || name === undefined || rest.length > 0) throw new ResultKeyError(`invalid result key '${key}'`);
  return resultKey(jobId, name);
}

/** Where image `index` (0-based) of a job is stored: written by the worker, served by the API. */
export function imageKey(jobId: string, index: number): string {
  return resultKey(jobId, `image-${index}.png`);
}

/** Where a job's preview at the end of `stage` (0-based) is stored. */
export function previewKey(jobId: string, stage: number): string {
  return resultKey(jobId, `stage-${stage}.png`);
}
