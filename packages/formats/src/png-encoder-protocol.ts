import type { PngFilter } from './png.ts';

// The messages between PngEncoderPool (png-pool.ts) and its encoder threads
// (png-encoder-thread.mjs, plain JavaScript that imports these types in JSDoc). One definition for
// both sides; tsc checks the thread script against it.

/** parent -> thread: encode one checked image; `rgb` is transferred (a copy the pool made). */
export interface EncodeRequest {
  type: 'encode';
  id: number;
  /** width * height * 3 bytes of 8-bit RGB, row-major. */
  rgb: ArrayBuffer;
  width: number;
  height: number;
  /** [keyword, text] in file order, already checked by preparePngInput. */
  text: [string, string][];
  filter: PngFilter;
}

export type EncoderRequest = EncodeRequest;

/** thread -> parent. `rgb` is the request's pixel buffer, transferred back for reuse. */
export type EncoderReply =
  /** `png` is transferred: the whole file. */
  | { type: 'encoded'; id: number; png: ArrayBuffer; rgb: ArrayBuffer }
  | { type: 'encode-error'; id: number; message: string; rgb: ArrayBuffer };
