import { Worker } from 'node:worker_threads';
import { PngError, preparePngInput, type EncodePngOptions } from './png.ts';
import type { EncoderReply, EncodeRequest } from './png-encoder-protocol.ts';

// encodePng off the caller's thread. A 256 px image costs about 7 ms of CPU (row filters and
// deflate, about half each); the worker service encodes a preview per stage and every final image
// while other jobs need its event loop (lock renewal, cancel requests, progress writes). The pool
// runs the same code (png-encode.mjs) in worker threads, so the bytes are encodePng's, and the
// calling thread only checks the input, copies the pixels and wraps the answer.

const THREAD_URL = new URL('./png-encoder-thread.mjs', import.meta.url);

/**
 * Pixel buffers the threads have handed back, kept for the next copies up to this many bytes (20
 * images of 256 px take 3.75 MiB). Fresh memory is what makes a copy slow: 20 copies of 192 KiB
 * measured 11-28 ms into new buffers against 0.3 ms into used ones on this project's VMs.
 */
const SPARE_BYTES_LIMIT = 8 * 1024 * 1024;

export interface PngEncoderPoolOptions {
  /**
   * Encoder threads, started on demand and kept while the pool is open. Default 1: the point is
   * the caller's event loop, not PNG throughput. The worker service's heavy work is onnxruntime's
   * forward passes, which already use a thread per physical core of their own; one encoder thread
   * (~7 ms per 256 px image against forward passes of hundreds of ms) keeps up with the images
   * while taking the least CPU from them. More threads only pay where many images arrive at once
   * and cores are idle.
   */
  threads?: number;
}

interface Job {
  /** Its pixels are transferred (detached here) once a thread has it. */
  request: EncodeRequest;
  resolve: (png: Buffer) => void;
  reject: (error: Error) => void;
}

interface EncoderThread {
  worker: Worker;
  /** The request it is working on; each thread gets one at a time. */
  job: Job | null;
  /** Set once it has failed or been terminated: its events are ignored from then on. */
  gone: boolean;
}

/**
 * A small pool of worker threads that encode PNGs byte for byte as encodePng does.
 *
 * - Requests run in the order they were made (one queue, FIFO), each on the first idle thread.
 * - The pixels are copied when `encode` is called (the caller may reuse its array as soon as it
 *   returns) and the copy is transferred, not copied again; the PNG comes back transferred, and
 *   so does the copy, to be reused for a later one.
 * - Idle threads are unref'd: a pool never keeps a process alive, though pending encodes do.
 * - A thread that dies rejects the encode it was running (PngError) and is replaced by a new one
 *   for the next request; the pool stays open. An encode that cannot be sent to a thread
 *   (postMessage throws) rejects the same way, and the thread takes the next one.
 * - `close()` terminates the threads and rejects pending and later encodes.
 */
export class PngEncoderPool {
  /** The most threads this pool runs. */
  readonly size: number;

  // TS-private rather than #private so that a test can kill a thread to check recovery.
  private readonly threads: EncoderThread[] = [];
  private readonly queue: Job[] = [];
  /** Returned pixel buffers by byte length, for the next copies (see SPARE_BYTES_LIMIT). */
  private readonly spares = new Map<number, ArrayBuffer[]>();
  private spareBytes = 0;
  private nextId = 0;
  private closedError: PngError | null = null;
  private closing: Promise<void> | null = null;

  constructor(options: PngEncoderPoolOptions = {}) {
    const threads = options.threads ?? 1;
    if (!Number.isInteger(threads) || threads < 1) {
      throw new RangeError(`PngEncoderPool threads must be a positive integer, not ${threads}`);
    }
    this.size = threads;
  }

  /** Encodes waiting for a thread or running on one. */
  get pending(): number {
    return this.queue.length + this.threads.filter((thread) => thread.job !== null).length;
  }

  /**
   * encodePng's bytes for the same arguments, encoded on a pool thread. Rejects with encodePng's
   * PngError (checked here, before any thread is involved) on bad input, and with a PngError
   * naming the cause when the pool is closed or its thread died.
   */
  encode(
    rgb: Uint8Array,
    width: number,
    height: number,
    text: Readonly<Record<string, string>> = {},
    options: EncodePngOptions = {},
  ): Promise<Buffer> {
    if (this.closedError) return Promise.reject(this.closedError);
    let request: EncodeRequest;
    try {
      const checked = preparePngInput(rgb, width, height, text, options);
      // The copy goes into a buffer of exactly the view's size that nothing else holds (never the
      // caller's, nor a Buffer's shared pool): ours to transfer.
      const copy = this.takeSpare(rgb.byteLength);
      new Uint8Array(copy).set(rgb);
      request = { type: 'encode', id: this.nextId++, rgb: copy, width, height, text: checked.text, filter: checked.filter };
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return new Promise<Buffer>((resolve, reject) => {
      this.queue.push({ request, resolve, reject });
      this.dispatch();
    });
  }

  /**
   * Terminates the threads. Encodes still pending reject with "PngEncoderPool is closed", and so
   * do later ones. Idempotent; resolves once every thread has stopped.
   */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    this.closedError = new PngError('PngEncoderPool is closed: the PNG was not encoded');
    this.spares.clear();
    this.spareBytes = 0;
    const threads = this.threads.splice(0);
    // In the order they were asked for: the running ones first, then the queue.
    const jobs = [...threads.flatMap((thread) => (thread.job ? [thread.job] : [])), ...this.queue.splice(0)];
    for (const thread of threads) {
      thread.gone = true;
      thread.job = null;
    }
    for (const job of jobs) job.reject(this.closedError);
    await Promise.all(threads.map((thread) => thread.worker.terminate()));
  }

  /** Hands queued requests to idle threads, starting threads up to `size`. */
  private dispatch(): void {
    while (this.queue.length > 0 && this.closedError === null) {
      let thread = this.threads.find((candidate) => candidate.job === null);
      if (!thread) {
        if (this.threads.length >= this.size) return;
        try {
          thread = this.startThread();
        } catch (error) {
          // Not seen in practice (the constructor's errors arrive as 'error' events); fail the
          // request rather than leave it waiting.
          this.queue.shift()?.reject(new PngError(`cannot start a PNG encoder thread: ${(error as Error).message}`));
          continue;
        }
      }
      const job = this.queue.shift() as Job;
      try {
        // Throws (DataCloneError, TypeError) for a request it cannot clone or transfer, before
        // anything reaches the thread: only this encode fails; the thread stays idle for the next.
        thread.worker.postMessage(job.request, [job.request.rgb]);
      } catch (error) {
        job.reject(new PngError(`could not send the image to the PNG encoder thread: ${(error as Error).message}`));
        if (thread.job === null) thread.worker.unref(); // a thread just started for it is ref'd
        continue;
      }
      thread.job = job;
      thread.worker.ref();
    }
  }

  private takeSpare(byteLength: number): ArrayBuffer {
    const spare = this.spares.get(byteLength)?.pop();
    if (!spare) return new ArrayBuffer(byteLength);
    this.spareBytes -= byteLength;
    return spare;
  }

  private keepSpare(buffer: ArrayBuffer): void {
    if (this.closedError !== null || this.spareBytes + buffer.byteLength > SPARE_BYTES_LIMIT) return;
    const list = this.spares.get(buffer.byteLength);
    if (list) list.push(buffer);
    else this.spares.set(buffer.byteLength, [buffer]);
    this.spareBytes += buffer.byteLength;
  }

  private startThread(): EncoderThread {
    // execArgv []: the thread script is plain JavaScript, so it needs no loader (tsx's `--import`
    // would otherwise be inherited), and it starts the same under tsx, vitest and plain node.
    const worker = new Worker(THREAD_URL, { name: 'png-encoder', execArgv: [] });
    const thread: EncoderThread = { worker, job: null, gone: false };
    worker.on('message', (reply: EncoderReply) => this.handleReply(thread, reply));
    worker.on('error', (error: Error) => this.lose(thread, `failed: ${error.message}`));
    worker.on('messageerror', (error: Error) => this.lose(thread, `sent a message that could not be read: ${error.message}`));
    worker.on('exit', (code: number) => this.lose(thread, `exited unexpectedly (code ${code})`));
    this.threads.push(thread);
    return thread;
  }

  private handleReply(thread: EncoderThread, reply: EncoderReply): void {
    const job = thread.job;
    if (thread.gone || !job || job.request.id !== reply.id) return;
    thread.job = null;
    this.keepSpare(reply.rgb);
    if (reply.type === 'encoded') job.resolve(Buffer.from(reply.png));
    else job.reject(new PngError(reply.message));
    this.dispatch();
    if (thread.job === null) thread.worker.unref();
  }

  /** A thread died: its encode rejects, and the next request starts a new thread in its place. */
  private lose(thread: EncoderThread, what: string): void {
    if (thread.gone) return;
    thread.gone = true;
    const index = this.threads.indexOf(thread);
    if (index >= 0) this.threads.splice(index, 1);
    const job = thread.job;
    thread.job = null;
    thread.worker.unref();
    // After 'error' the thread is ending anyway; after a bad message its state is unknown.
    void thread.worker.terminate();
    job?.reject(new PngError(`the PNG encoder thread ${what}`));
    this.dispatch();
  }
}
