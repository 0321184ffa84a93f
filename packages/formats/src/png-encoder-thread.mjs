// @ts-check
// One encoder thread of PngEncoderPool (png-pool.ts): it runs the whole PNG encoding (row filters,
// deflate, chunk assembly; png-encode.mjs, the code encodePng runs) so that the pool's caller keeps
// its event loop.
//
// Plain JavaScript on purpose: worker threads start with Node's own loader, not vitest's or tsx's
// TypeScript one. Its message types are png-encoder-protocol.ts's, which tsc checks it against.
//
// Protocol:
//   parent -> thread  {type:'encode', id, rgb, width, height, text, filter}   (rgb transferred)
//   thread -> parent  {type:'encoded', id, png, rgb}                     (png, rgb transferred)
//                  or {type:'encode-error', id, message, rgb}                (rgb transferred)
// `rgb` goes back so that the parent can copy later pixels into it (fresh memory is slower).
// The parent sends one request at a time and waits for its answer; it ends the thread with
// terminate(), which is safe at any point (no native state outlives an encode).

import { parentPort } from 'node:worker_threads';
import { encodeCheckedPng } from './png-encode.mjs';

/**
 * @typedef {import('./png-encoder-protocol.ts').EncoderRequest} EncoderRequest
 * @typedef {import('./png-encoder-protocol.ts').EncoderReply} EncoderReply
 */

if (!parentPort) throw new Error('png-encoder-thread.mjs must be started as a worker thread');
const port = parentPort;

/** Sends a reply, transferring `transfer`. */
function post(/** @type {EncoderReply} */ message, /** @type {ArrayBuffer[]} */ transfer = []) {
  port.postMessage(message, transfer);
}

port.on('message', (/** @type {EncoderRequest} */ request) => {
  const { id, rgb: pixels } = request;
  try {
    const rgb = new Uint8Array(pixels);
    const png = encodeCheckedPng(rgb, request.width, request.height, request.text, request.filter);
    // encodeCheckedPng's result owns its ArrayBuffer; copy only if that ever changes.
    const owned = png.byteOffset === 0 && png.byteLength === png.buffer.byteLength ? png : new Uint8Array(png);
    const buffer = /** @type {ArrayBuffer} */ (owned.buffer);
    post({ type: 'encoded', id, png: buffer, rgb: pixels }, [buffer, pixels]);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    post({ type: 'encode-error', id, message: message.replace(/\s+/g, ' ').trim(), rgb: pixels }, [pixels]);
  }
});
