import { constants, crc32, deflateSync, inflateSync } from 'node:zlib';

// A small PNG writer for what the sampler produces (8-bit RGB) plus text
// chunks, and a reader for those text chunks. We write our own rather than use
// an image library because none of the npm encoders writes UTF-8 text chunks
// (iTXt), and the generation parameters travel inside every image. Output is
// a pure function of the inputs (no timestamps, fixed filter choice and zlib
// settings), so the same generation gives byte-identical files with a given
// Node (zlib) version.

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** PNG limits chunk lengths and image sides to 2^31 - 1. */
const MAX_UINT31 = 0x7fff_ffff;
/** Decompressed text beyond this is refused: a PNG's text is metadata, not a zip bomb. */
const MAX_TEXT_BYTES = 16 * 1024 * 1024;

export class PngError extends Error {
  override name = 'PngError';
}

/** The five PNG row filters; `adaptive` picks one per row (the minimum-sum heuristic the PNG spec suggests). */
export type PngFilter = 'none' | 'sub' | 'up' | 'average' | 'paeth' | 'adaptive';

const FILTER_TYPES = { none: 0, sub: 1, up: 2, average: 3, paeth: 4 } as const;

export interface EncodePngOptions {
  /** Default `adaptive`: still deterministic, and usually smaller than one filter for every row. */
  filter?: PngFilter;
}

/** One PNG chunk: length, type, data and the CRC of type and data. */
export function pngChunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.byteLength);
  out.writeUInt32BE(data.byteLength, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.byteLength)), 8 + data.byteLength);
  return out;
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

/** iTXt: keyword, NUL, compression flag 0, method 0, empty language tag, NUL, empty translated keyword, NUL, UTF-8 text. */
function itxtChunk(keyword: string, text: string): Buffer {
  checkKeyword(keyword);
  if (text.includes('\0')) throw new PngError(`PNG text ${JSON.stringify(keyword)} must not contain NUL characters`);
  const data = Buffer.concat([Buffer.from(keyword, 'latin1'), Buffer.from([0, 0, 0, 0, 0]), Buffer.from(text, 'utf8')]);
  return pngChunk('iTXt', data);
}

/** |byte read as a signed 8-bit number|, for the adaptive filter choice. */
const SIGNED_MAGNITUDE = Uint16Array.from({ length: 256 }, (_, v) => (v < 128 ? v : 256 - v));

/**
 * Writes `row` filtered with filter `type` into `out` (without the type byte) and returns the sum of
 * the filtered bytes read as signed, the adaptive choice's measure (small sums compress well).
 * `previous` is the unfiltered row above (null for the first row, which PNG treats as zeros).
 * One plain loop per filter: this runs five times per row of every image the service writes.
 */
function filterRow(type: number, row: Uint8Array, previous: Uint8Array | null, bpp: number, out: Uint8Array): number {
  const n = row.length;
  const above = previous ?? new Uint8Array(n);
  let sum = 0;
  let v = 0;
  switch (type) {
    case 0:
      for (let i = 0; i < n; i++) {
        v = row[i] as number;
        out[i] = v;
        sum += SIGNED_MAGNITUDE[v] as number;
      }
      return sum;
    case 1:
      for (let i = 0; i < n; i++) {
        v = i < bpp ? (row[i] as number) : ((row[i] as number) - (row[i - bpp] as number)) & 0xff;
        out[i] = v;
        sum += SIGNED_MAGNITUDE[v] as number;
      }
      return sum;
    case 2:
      for (let i = 0; i < n; i++) {
        v = ((row[i] as number) - (above[i] as number)) & 0xff;
        out[i] = v;
        sum += SIGNED_MAGNITUDE[v] as number;
      }
      return sum;
    case 3:
      for (let i = 0; i < n; i++) {
        v = ((row[i] as number) - (((i >= bpp ? (row[i - bpp] as number) : 0) + (above[i] as number)) >>> 1)) & 0xff;
        out[i] = v;
        sum += SIGNED_MAGNITUDE[v] as number;
      }
      return sum;
    default:
      for (let i = 0; i < bpp; i++) {
        // a = c = 0: Paeth predicts the byte above
        v = ((row[i] as number) - (above[i] as number)) & 0xff;
        out[i] = v;
        sum += SIGNED_MAGNITUDE[v] as number;
      }
      for (let i = bpp; i < n; i++) {
        const a = row[i - bpp] as number;
        const b = above[i] as number;
        const c = above[i - bpp] as number;
        const pa = Math.abs(b - c);
        const pb = Math.abs(a - c);
        const pc = Math.abs(a + b - 2 * c);
        v = ((row[i] as number) - (pa <= pb && pa <= pc ? a : pb <= pc ? b : c)) & 0xff;
        out[i] = v;
        sum += SIGNED_MAGNITUDE[v] as number;
      }
      return sum;
  }
}

function filteredScanlines(rgb: Uint8Array, width: number, height: number, filter: PngFilter): Buffer {
  const bpp = 3;
  const stride = width * bpp;
  const out = Buffer.alloc(height * (stride + 1));
  const candidates = Array.from({ length: 5 }, () => new Uint8Array(stride));
  for (let y = 0; y < height; y++) {
    const row = rgb.subarray(y * stride, (y + 1) * stride);
    const previous = y > 0 ? rgb.subarray((y - 1) * stride, y * stride) : null;
    let type: number;
    if (filter === 'adaptive') {
      // The minimum-sum heuristic; ties go to the lower filter type.
      let best = Number.POSITIVE_INFINITY;
      type = 0;
      for (let t = 0; t < 5; t++) {
        const sum = filterRow(t, row, previous, bpp, candidates[t] as Uint8Array);
        if (sum < best) {
          best = sum;
          type = t;
        }
      }
    } else {
      type = FILTER_TYPES[filter];
      filterRow(type, row, previous, bpp, candidates[type] as Uint8Array);
    }
    const offset = y * (stride + 1);
    out[offset] = type;
    out.set(candidates[type] as Uint8Array, offset + 1);
  }
  return out;
}

/**
 * Encodes 8-bit RGB pixels (row-major, `[height, width, 3]`) as a PNG with one
 * iTXt chunk per `text` entry (UTF-8, uncompressed, in the object's key order),
 * placed right after IHDR so that readers which stop early still see them.
 */
export function encodePng(
  rgb: Uint8Array,
  width: number,
  height: number,
  text: Readonly<Record<string, string>> = {},
  options: EncodePngOptions = {},
): Buffer {
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

  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: truecolour (RGB)
  ihdr[10] = 0; // compression: deflate
  ihdr[11] = 0; // filter method: adaptive (per-row filter types)
  ihdr[12] = 0; // no interlace

  const textChunks = Object.entries(text).map(([keyword, value]) => itxtChunk(keyword, value));
  const idat = deflateSync(filteredScanlines(rgb, width, height, filter), {
    level: constants.Z_BEST_COMPRESSION,
    memLevel: 9,
  });
  return Buffer.concat([SIGNATURE, pngChunk('IHDR', ihdr), ...textChunks, pngChunk('IDAT', idat), pngChunk('IEND', new Uint8Array(0))]);
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
