import { crc32, inflateSync } from 'node:zlib';
import { encodeCheckedPng, FILTER_TYPES, pngChunk, SIGNATURE } from './png-encode.mjs';

// A small PNG writer for what the sampler produces (8-bit RGB) plus text
// chunks, and a reader for those text chunks. We write our own rather than use
// an image library because none of the npm encoders writes UTF-8 text chunks
// (iTXt), and the generation parameters travel inside every image. Output is
// a pure function of the inputs (no timestamps, fixed filter choice and zlib
// settings), so the same generation gives byte-identical files with a given
// Node (zlib) version.

/** PNG limits chunk lengths and image sides to 2^31 - 1. */
const MAX_UINT31 = 0x7fff_ffff;
/** Decompressed text beyond this is refused: a PNG's text is metadata, not a zip bomb. */
const MAX_TEXT_BYTES = 16 * 1024 * 1024;

export class PngError extends Error {
  override name = 'PngError';
}

/** The five PNG row filters; `adaptive` picks one per row (the minimum-sum heuristic the PNG spec suggests). */
export type PngFilter = 'none' | 'sub' | 'up' | 'average' | 'paeth' | 'adaptive';

// The pixel work (row filters, deflate, chunk assembly) lives in png-encode.mjs, plain JavaScript
// that encoder threads can load too; this module checks the input and reads PNGs.

/** One PNG chunk: length, type, data and the CRC of type and data. */
export { pngChunk };

export interface EncodePngOptions {
  /** Default `adaptive`: still deterministic, and usually smaller than one filter for every row. */
  filter?: PngFilter;
}

/**
 * A keyword is 1-79 printable Latin-1 characters without leading, trailing or
 * doubled spaces (PNG spec 11.3.4.2); readers rely on that to find the text.
 */
function checkKeyword(keyword: string): void {
  if (!/^[\x20-\x7e\xa1-\xff]{1,79}$/.test(keyword) || /^ | $| {2}/.test(keyword)) {
    throw new PngError(
      `PNG text keyword ${JSON.stringify(keyword)} must be 1-79 printable Latin-1 characters without leading, trailing or double spaces`,
    );
  }
}

/** What encodeCheckedPng (png-encode.mjs) takes besides the pixels, once checked. */
export interface CheckedPngInput {
  /** The text entries in the object's key order. */
  text: [string, string][];
  filter: PngFilter;
}

/**
 * Every check encodePng makes, in its order and with its messages, without encoding anything:
 * PngEncoderPool runs it on the calling thread so that bad input fails there, as PngError.
 * @throws PngError
 */
export function preparePngInput(
  rgb: Uint8Array,
  width: number,
  height: number,
  text: Readonly<Record<string, string>>,
  options: EncodePngOptions,
): CheckedPngInput {
  for (const [name, side] of [
    ['width', width],
    ['height', height],
  ] as const) {
    if (!Number.isInteger(side) || side < 1 || side > MAX_UINT31) {
      throw new PngError(`PNG ${name} must be an integer from 1 to ${MAX_UINT31}, not ${side}`);
    }
  }
  if (rgb.length !== width * height * 3) {
    throw new PngError(`PNG pixels: ${width}x${height} RGB needs ${width * height * 3} bytes, got ${rgb.length}`);
  }
  const filter = options.filter ?? 'adaptive';
  if (filter !== 'adaptive' && !Object.hasOwn(FILTER_TYPES, filter)) throw new PngError(`unknown PNG filter ${String(filter)}`);
  const entries = Object.entries(text);
  for (const [keyword, value] of entries) {
    checkKeyword(keyword);
    if (value.includes('\0')) throw new PngError(`PNG text ${JSON.stringify(keyword)} must not contain NUL characters`);
  }
  return { text: entries, filter };
}

/**
 * Encodes 8-bit RGB pixels (row-major, `[height, width, 3]`) as a PNG with one
 * iTXt chunk per `text` entry (UTF-8, uncompressed, in the object's key order),
 * placed right after IHDR so that readers which stop early still see them.
 * Synchronous: about 7 ms of this thread for a 256 px image; PngEncoderPool
 * (png-pool.ts) gives the same bytes from worker threads.
 */
export function encodePng(
  rgb: Uint8Array,
  width: number,
  height: number,
  text: Readonly<Record<string, string>> = {},
  options: EncodePngOptions = {},
): Buffer {
  const checked = preparePngInput(rgb, width, height, text, options);
  return encodeCheckedPng(rgb, width, height, checked.text, checked.filter);
}

export interface PngChunk {
  type: string;
  /** Byte offset of the chunk (its length field) in the file. */
  offset: number;
  data: Buffer;
}

/**
 * Splits a PNG into its chunks, checking the signature, every length and every
 * CRC, and that it starts with IHDR and ends with IEND.
 * @param source names the file in error messages
 * @throws PngError with a one-line message on a file that is not a PNG or is corrupt
 */
export function readPngChunks(png: Uint8Array, source = 'PNG'): PngChunk[] {
  const bytes = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  if (bytes.byteLength < SIGNATURE.length || !bytes.subarray(0, SIGNATURE.length).equals(SIGNATURE)) {
    throw new PngError(`${source}: not a PNG file (bad signature)`);
  }
  const chunks: PngChunk[] = [];
  let offset = SIGNATURE.length;
  for (;;) {
    if (offset === bytes.byteLength) {
      throw new PngError(`${source}: truncated PNG: no ${chunks.length === 0 ? 'IHDR' : 'IEND'} chunk (file ends at byte ${offset})`);
    }
    if (offset + 8 > bytes.byteLength) throw new PngError(`${source}: truncated PNG: chunk header at byte ${offset} is cut off`);
    const length = bytes.readUInt32BE(offset);
    const typeBytes = bytes.subarray(offset + 4, offset + 8);
    const type = typeBytes.toString('latin1');
    if (!/^[A-Za-z]{4}$/.test(type)) throw new PngError(`${source}: corrupt PNG: bad chunk type at byte ${offset}`);
    if (length > MAX_UINT31 || offset + 12 + length > bytes.byteLength) {
      throw new PngError(`${source}: truncated PNG: chunk ${type} at byte ${offset} runs past the end of the file`);
    }
    const data = bytes.subarray(offset + 8, offset + 8 + length);
    const stored = bytes.readUInt32BE(offset + 8 + length);
    const computed = crc32(data, crc32(typeBytes));
    if (stored !== computed) {
      throw new PngError(
        `${source}: corrupt PNG: chunk ${type} at byte ${offset} has CRC 0x${stored.toString(16).padStart(8, '0')} ` +
          `but its contents give 0x${computed.toString(16).padStart(8, '0')}`,
      );
    }
    if (chunks.length === 0 && type !== 'IHDR') throw new PngError(`${source}: corrupt PNG: first chunk is ${type}, not IHDR`);
    chunks.push({ type, offset, data });
    offset += 12 + length;
    if (type === 'IEND') return chunks;
  }
}

function inflateText(data: Uint8Array, what: string): Buffer {
  try {
    return inflateSync(data, { maxOutputLength: MAX_TEXT_BYTES });
  } catch (error) {
    throw new PngError(`${what}: cannot decompress: ${(error as Error).message}`);
  }
}

/** One text chunk as [keyword, text]. */
function decodeTextChunk(chunk: PngChunk, source: string): [string, string] | null {
  if (chunk.type !== 'tEXt' && chunk.type !== 'zTXt' && chunk.type !== 'iTXt') return null;
  const what = `${source}: corrupt PNG: ${chunk.type} chunk at byte ${chunk.offset}`;
  const { data } = chunk;
  const keywordEnd = data.indexOf(0);
  if (keywordEnd < 1 || keywordEnd > 79) throw new PngError(`${what} has no valid keyword`);
  const keyword = data.subarray(0, keywordEnd).toString('latin1');
  const rest = data.subarray(keywordEnd + 1);
  switch (chunk.type) {
    case 'tEXt':
      return [keyword, rest.toString('latin1')];
    case 'zTXt': {
      if (rest[0] !== 0) throw new PngError(`${what} uses unknown compression method ${rest[0]}`);
      return [keyword, inflateText(rest.subarray(1), what).toString('latin1')];
    }
    case 'iTXt': {
      const [compressed, method] = [rest[0], rest[1]];
      if (compressed === undefined || method === undefined) throw new PngError(`${what} is truncated`);
      const languageEnd = rest.indexOf(0, 2);
      const translatedEnd = languageEnd < 0 ? -1 : rest.indexOf(0, languageEnd + 1);
      if (translatedEnd < 0) throw new PngError(`${what} is truncated`);
      const body = rest.subarray(translatedEnd + 1);
      if (compressed === 0) return [keyword, body.toString('utf8')];
      if (compressed !== 1 || method !== 0) throw new PngError(`${what} uses unknown compression ${compressed}/${method}`);
      return [keyword, inflateText(body, what).toString('utf8')];
    }
  }
}

/**
 * The text of a PNG's tEXt, zTXt and iTXt chunks by keyword (the first chunk
 * wins when a keyword repeats). Checks the whole file's structure and CRCs.
 * @throws PngError with a one-line message on a file that is not a PNG or is corrupt
 */
export function readPngText(png: Uint8Array, source = 'PNG'): Record<string, string> {
  const text = new Map<string, string>();
  for (const chunk of readPngChunks(png, source)) {
    const entry = decodeTextChunk(chunk, source);
    if (entry && !text.has(entry[0])) text.set(entry[0], entry[1]);
  }
  // fromEntries defines own properties, so even a keyword "__proto__" stays data.
  return Object.fromEntries(text);
}
