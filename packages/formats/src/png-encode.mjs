// @ts-check
// The PNG encoder's pixel work: row filters, scanline assembly, deflate and chunk assembly. One
// implementation for both callers: the synchronous encodePng (png.ts) and the encoder threads of
// PngEncoderPool (png-encoder-thread.mjs, png-pool.ts).
//
// Plain JavaScript on purpose: worker threads start with Node's own loader, not vitest's or tsx's
// TypeScript one, and Node 20 cannot strip types. tsc checks this file (// @ts-check, JSDoc types).
//
// Nothing here validates its input: png.ts (preparePngInput) checks sizes, pixel count, filter
// name, keywords and text, with the PngError messages callers see, before anything reaches this
// module, on whichever thread.

import { Buffer } from 'node:buffer';
import { constants, crc32, deflateSync } from 'node:zlib';

/**
 * @typedef {import('./png.ts').PngFilter} PngFilter
 * @typedef {Exclude<PngFilter, 'adaptive'>} SingleFilter
 */

/** The eight bytes every PNG file starts with (png.ts's reader checks them too). */
export const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** PNG filter type bytes by name. */
export const FILTER_TYPES = Object.freeze({ none: 0, sub: 1, up: 2, average: 3, paeth: 4 });

/**
 * One PNG chunk: length, type, data and the CRC of type and data.
 * @param {string} type
 * @param {Uint8Array} data
 * @returns {Buffer}
 */
export function pngChunk(type, data) {
  const out = Buffer.alloc(12 + data.byteLength);
  out.writeUInt32BE(data.byteLength, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.byteLength)), 8 + data.byteLength);
  return out;
}

/**
 * iTXt: keyword, NUL, compression flag 0, method 0, empty language tag, NUL, empty translated
 * keyword, NUL, UTF-8 text. The keyword and text have been checked (png.ts).
 * @param {string} keyword
 * @param {string} text
 */
function itxtChunk(keyword, text) {
  const data = Buffer.concat([Buffer.from(keyword, 'latin1'), Buffer.from([0, 0, 0, 0, 0]), Buffer.from(text, 'utf8')]);
  return pngChunk('iTXt', data);
}

/** |byte read as a signed 8-bit number|, for the adaptive filter choice. */
const SIGNED_MAGNITUDE = Uint16Array.from({ length: 256 }, (_, v) => (v < 128 ? v : 256 - v));

// The loops below cast every typed-array read to number (`/** @type {number} */ (x)`): with
// noUncheckedIndexedAccess tsc reads them as `number | undefined`, and a cast costs nothing at run
// time, where `?? 0` would be one more operation per byte.

/**
 * Writes `row` filtered with filter `type` into `out` (without the type byte) and returns the sum of
 * the filtered bytes read as signed, the adaptive choice's measure (small sums compress well).
 * `previous` is the unfiltered row above (null for the first row, which PNG treats as zeros).
 * One plain loop per filter: this runs five times per row of every image the service writes.
 * @param {number} type
 * @param {Uint8Array} row
 * @param {Uint8Array | null} previous
 * @param {number} bpp
 * @param {Uint8Array} out
 * @returns {number}
 */
function filterRow(type, row, previous, bpp, out) {
  const n = row.length;
  const above = previous ?? new Uint8Array(n);
  let sum = 0;
  let v = 0;
  switch (type) {
    case 0:
      for (let i = 0; i < n; i++) {
        v = /** @type {number} */ (row[i]);
        out[i] = v;
        sum += /** @type {number} */ (SIGNED_MAGNITUDE[v]);
      }
      return sum;
    case 1:
      for (let i = 0; i < n; i++) {
        v = i < bpp ? /** @type {number} */ (row[i]) : (/** @type {number} */ (row[i]) - /** @type {number} */ (row[i - bpp])) & 0xff;
        out[i] = v;
        sum += /** @type {number} */ (SIGNED_MAGNITUDE[v]);
      }
      return sum;
    case 2:
      for (let i = 0; i < n; i++) {
        v = (/** @type {number} */ (row[i]) - /** @type {number} */ (above[i])) & 0xff;
        out[i] = v;
        sum += /** @type {number} */ (SIGNED_MAGNITUDE[v]);
      }
      return sum;
    case 3:
      for (let i = 0; i < n; i++) {
        const left = i >= bpp ? /** @type {number} */ (row[i - bpp]) : 0;
        v = (/** @type {number} */ (row[i]) - ((left + /** @type {number} */ (above[i])) >>> 1)) & 0xff;
        out[i] = v;
        sum += /** @type {number} */ (SIGNED_MAGNITUDE[v]);
      }
      return sum;
    default:
      for (let i = 0; i < bpp; i++) {
        // a = c = 0: Paeth predicts the byte above
        v = (/** @type {number} */ (row[i]) - /** @type {number} */ (above[i])) & 0xff;
        out[i] = v;
        sum += /** @type {number} */ (SIGNED_MAGNITUDE[v]);
      }
      for (let i = bpp; i < n; i++) {
        const a = /** @type {number} */ (row[i - bpp]);
        const b = /** @type {number} */ (above[i]);
        const c = /** @type {number} */ (above[i - bpp]);
        const pa = Math.abs(b - c);
        const pb = Math.abs(a - c);
        const pc = Math.abs(a + b - 2 * c);
        v = (/** @type {number} */ (row[i]) - (pa <= pb && pa <= pc ? a : pb <= pc ? b : c)) & 0xff;
        out[i] = v;
        sum += /** @type {number} */ (SIGNED_MAGNITUDE[v]);
      }
      return sum;
  }
}

/**
 * Every row's filter type byte followed by the filtered row: what IDAT deflates.
 * @param {Uint8Array} rgb
 * @param {number} width
 * @param {number} height
 * @param {PngFilter} filter
 * @returns {Buffer}
 */
function filteredScanlines(rgb, width, height, filter) {
  const bpp = 3;
  const stride = width * bpp;
  const out = Buffer.alloc(height * (stride + 1));
  const candidates = Array.from({ length: 5 }, () => new Uint8Array(stride));
  for (let y = 0; y < height; y++) {
    const row = rgb.subarray(y * stride, (y + 1) * stride);
    const previous = y > 0 ? rgb.subarray((y - 1) * stride, y * stride) : null;
    /** @type {number} */
    let type;
    if (filter === 'adaptive') {
      // The minimum-sum heuristic; ties go to the lower filter type.
      let best = Number.POSITIVE_INFINITY;
      type = 0;
      for (let t = 0; t < 5; t++) {
        const sum = filterRow(t, row, previous, bpp, /** @type {Uint8Array} */ (candidates[t]));
        if (sum < best) {
          best = sum;
          type = t;
        }
      }
    } else {
      type = FILTER_TYPES[filter];
      filterRow(type, row, previous, bpp, /** @type {Uint8Array} */ (candidates[type]));
    }
    const offset = y * (stride + 1);
    out[offset] = type;
    out.set(/** @type {Uint8Array} */ (candidates[type]), offset + 1);
  }
  return out;
}

/**
 * The PNG file for checked inputs (see png.ts's encodePng for the layout): signature, IHDR, one
 * iTXt per text entry in order, IDAT (deflate level 9, memLevel 9), IEND. The result owns its whole
 * ArrayBuffer (never a slice of Node's shared Buffer pool), so a thread can transfer it.
 * @param {Uint8Array} rgb 8-bit RGB, row-major, exactly width * height * 3 bytes
 * @param {number} width
 * @param {number} height
 * @param {ReadonlyArray<readonly [string, string]>} text [keyword, text] pairs, checked
 * @param {PngFilter} filter
 * @returns {Buffer}
 */
export function encodeCheckedPng(rgb, width, height, text, filter) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: truecolour (RGB)
  ihdr[10] = 0; // compression: deflate
  ihdr[11] = 0; // filter method: adaptive (per-row filter types)
  ihdr[12] = 0; // no interlace

  const textChunks = text.map(([keyword, value]) => itxtChunk(keyword, value));
  const idat = deflateSync(filteredScanlines(rgb, width, height, filter), {
    level: constants.Z_BEST_COMPRESSION,
    memLevel: 9,
  });
  const parts = [SIGNATURE, pngChunk('IHDR', ihdr), ...textChunks, pngChunk('IDAT', idat), pngChunk('IEND', new Uint8Array(0))];
  let length = 0;
  for (const part of parts) length += part.byteLength;
  // allocUnsafeSlow: its own ArrayBuffer (Buffer.concat may hand out a slice of the shared pool);
  // every byte is written below.
  const out = Buffer.allocUnsafeSlow(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}
