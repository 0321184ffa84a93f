import { deflateSync, inflateSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { encodePng, pngChunk, PngError, readPngChunks, readPngText, type PngFilter } from '../src/png.ts';

// Our encoder is checked against an independent decoder (pngjs), pixel for pixel.

/** Deterministic pseudo-random bytes (xorshift32), so failures reproduce. */
function randomBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    out[i] = state & 0xff;
  }
  return out;
}

/** A smooth image with some noise: what filters other than `none` are for. */
function gradient(width: number, height: number): Uint8Array {
  const noise = randomBytes(width * height * 3, 7);
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      out[i] = (x * 4 + ((noise[i] ?? 0) & 3)) & 0xff;
      out[i + 1] = (y * 3) & 0xff;
      out[i + 2] = (x * y) & 0xff;
    }
  }
  return out;
}

/** Decodes with pngjs and returns RGB, checking that alpha is opaque everywhere. */
function decodeRgb(png: Buffer): { width: number; height: number; rgb: Uint8Array } {
  const decoded = PNG.sync.read(png, { checkCRC: true });
  const { width, height, data } = decoded;
  const rgb = new Uint8Array(width * height * 3);
  for (let p = 0; p < width * height; p++) {
    rgb[p * 3] = data[p * 4] ?? -1;
    rgb[p * 3 + 1] = data[p * 4 + 1] ?? -1;
    rgb[p * 3 + 2] = data[p * 4 + 2] ?? -1;
    expect(data[p * 4 + 3]).toBe(255);
  }
  return { width, height, rgb };
}


/** Inserts chunks right after IHDR (signature 8 bytes + IHDR 25 bytes). */
function withChunksAfterIhdr(png: Buffer, ...chunks: Buffer[]): Buffer {
  return Buffer.concat([png.subarray(0, 33), ...chunks, png.subarray(33)]);
}

function flipBits(bytes: Buffer, index: number, mask: number): void {
  bytes.writeUInt8(bytes.readUInt8(index) ^ mask, index);
}

const FILTERS: PngFilter[] = ['none', 'sub', 'up', 'average', 'paeth', 'adaptive'];

/**
 * The PNG spec's filtering, written as plainly as it reads (section 9), with the adaptive choice of
 * its section 12.8: the filter whose output, read as signed bytes, has the smallest sum; ties to the
 * lower type. The encoder's scanlines must equal these byte for byte, which keeps its files what
 * they have been for a given zlib.
 */
function referenceScanlines(rgb: Uint8Array, width: number, height: number, filter: PngFilter): Uint8Array {
  const stride = width * 3;
  const out: number[] = [];
  const at = (y: number, i: number): number => (y < 0 || i < 0 ? 0 : (rgb[y * stride + i] as number));
  for (let y = 0; y < height; y++) {
    const rows = [0, 1, 2, 3, 4].map((type) =>
      Array.from({ length: stride }, (_, i) => {
        const [x, a, b, c] = [at(y, i), at(y, i - 3), at(y - 1, i), at(y - 1, i - 3)];
        const p = a + b - c;
        const paeth = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
        return (x - [0, a, b, Math.floor((a + b) / 2), paeth][type]!) & 0xff;
      }),
    );
    const sums = rows.map((row) => row.reduce((sum, v) => sum + (v < 128 ? v : 256 - v), 0));
    const type = filter === 'adaptive' ? sums.indexOf(Math.min(...sums)) : FILTERS.indexOf(filter);
    out.push(type, ...rows[type]!);
  }
  return Uint8Array.from(out);
}

describe('encodePng', () => {
  it.each(FILTERS)('writes pixels pngjs decodes exactly, filter %s', (filter) => {
    for (const [width, height] of [
      [1, 1],
      [1, 7],
      [9, 1],
      [32, 32],
      [17, 5],
    ] as const) {
      for (const rgb of [randomBytes(width * height * 3, width * 31 + height), gradient(width, height)]) {
        const decoded = decodeRgb(encodePng(rgb, width, height, {}, { filter }));
        expect([decoded.width, decoded.height]).toEqual([width, height]);
        expect(Buffer.from(decoded.rgb).equals(Buffer.from(rgb)), `${width}x${height}`).toBe(true);
      }
    }
  });

  it('lays out signature, IHDR, one iTXt per entry in key order, IDAT, IEND', () => {
    const png = encodePng(gradient(4, 3), 4, 3, { parameters: '{}', Software: 'pixelflow-serve' });
    expect(Array.from(png.subarray(0, 8))).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const chunks = readPngChunks(png);
    expect(chunks.map((c) => c.type)).toEqual(['IHDR', 'iTXt', 'iTXt', 'IDAT', 'IEND']);
    const ihdr = chunks[0]?.data;
    expect(ihdr && [ihdr.readUInt32BE(0), ihdr.readUInt32BE(4), ...ihdr.subarray(8)]).toEqual([4, 3, 8, 2, 0, 0, 0]);
    // keyword NUL, uncompressed, method 0, empty language tag NUL, empty translated keyword NUL, text
    expect(chunks[2]?.data.toString('latin1')).toBe('Software\0\0\0\0\0pixelflow-serve');
    expect(chunks[4]?.data.byteLength).toBe(0);
  });

  it.each(FILTERS)('filters every row as the PNG spec says, filter %s', (filter) => {
    for (const [width, height] of [[1, 1], [2, 3], [17, 9], [64, 64]] as const) {
      for (const rgb of [gradient(width, height), randomBytes(width * height * 3, width + height)]) {
        const idat = readPngChunks(encodePng(rgb, width, height, {}, { filter })).find((chunk) => chunk.type === 'IDAT');
        expect(new Uint8Array(inflateSync(idat!.data))).toEqual(referenceScanlines(rgb, width, height, filter));
      }
    }
  });

  it('compresses a smooth image better with adaptive filtering than with none', () => {
    const rgb = gradient(64, 64);
    expect(encodePng(rgb, 64, 64, {}, { filter: 'adaptive' }).byteLength).toBeLessThan(
      encodePng(rgb, 64, 64, {}, { filter: 'none' }).byteLength,
    );
  });

  it('gives byte-identical output for the same inputs', () => {
    const rgb = randomBytes(32 * 32 * 3, 1);
    const text = { parameters: JSON.stringify({ seed: 42, class_name: 'daisy' }), Software: 'pixelflow-serve' };
    const first = encodePng(rgb, 32, 32, text);
    const second = encodePng(Uint8Array.from(rgb), 32, 32, { ...text });
    expect(second.equals(first)).toBe(true);
    expect(encodePng(rgb, 32, 32, { ...text, Software: 'other' }).equals(first)).toBe(false);
  });

  it('accepts a view into a larger buffer', () => {
    const backing = randomBytes(3 + 2 * 2 * 3, 5);
    const view = backing.subarray(3);
    expect(Buffer.from(decodeRgb(encodePng(view, 2, 2)).rgb).equals(Buffer.from(view))).toBe(true);
  });

  it('rejects pixels that do not fill the image, and bad sizes', () => {
    expect(() => encodePng(new Uint8Array(11), 2, 2)).toThrow('PNG pixels: 2x2 RGB needs 12 bytes, got 11');
    expect(() => encodePng(new Uint8Array(0), 0, 1)).toThrow('PNG width must be an integer from 1 to 2147483647, not 0');
    expect(() => encodePng(new Uint8Array(3), 1, 1.5)).toThrow(PngError);
  });

  it.each(['', 'a'.repeat(80), ' lead', 'trail ', 'dou  ble', 'tab\there', 'snow☃'])('rejects keyword %j', (keyword) => {
    expect(() => encodePng(new Uint8Array(3), 1, 1, { [keyword]: 'x' })).toThrow(/^PNG text keyword .* must be 1-79/);
  });

  it('rejects text with NUL', () => {
    expect(() => encodePng(new Uint8Array(3), 1, 1, { Comment: 'a\0b' })).toThrow('must not contain NUL');
  });
});

describe('readPngText', () => {
  it('round-trips UTF-8 text through iTXt', () => {
    const text = {
      parameters: JSON.stringify({ class_name: 'café crème', note: '日本語のテキスト', emoji: '🌼', quote: '"\\\n' }),
      Software: 'pixelflow-serve',
      Comment: '',
      'Latin-1 kéy': 'ok',
    };
    const png = encodePng(gradient(8, 8), 8, 8, text);
    expect(readPngText(png)).toEqual(text);
    expect(JSON.parse(readPngText(png)['parameters'] ?? '')).toMatchObject({ emoji: '🌼' });
    // The text chunks do not disturb a decoder that ignores them.
    expect(decodeRgb(png).width).toBe(8);
  });

  it('returns nothing for a PNG without text', () => {
    expect(readPngText(encodePng(new Uint8Array(3), 1, 1))).toEqual({});
  });

  it('reads tEXt (Latin-1), zTXt and compressed iTXt written by other tools', () => {
    const base = encodePng(new Uint8Array(3), 1, 1);
    const png = withChunksAfterIhdr(
      base,
      pngChunk('tEXt', Buffer.from('Title\0Gänseblümchen', 'latin1')),
      pngChunk('zTXt', Buffer.concat([Buffer.from('Comment\0\0', 'latin1'), deflateSync(Buffer.from('zipped ü', 'latin1'))])),
      pngChunk(
        'iTXt',
        Buffer.concat([Buffer.from('Description\0\x01\x00ja\0説明\0', 'utf8'), deflateSync(Buffer.from('デイジー', 'utf8'))]),
      ),
      pngChunk('tEXt', Buffer.from('Title\0second', 'latin1')),
      pngChunk('tEXt', Buffer.from('__proto__\0data', 'latin1')),
    );
    const text = readPngText(png);
    expect(text).toEqual({ Title: 'Gänseblümchen', Comment: 'zipped ü', Description: 'デイジー', ['__proto__']: 'data' });
    expect(Object.getPrototypeOf(text)).toBe(Object.prototype);
  });

  it('rejects a file that is not a PNG', () => {
    expect(() => readPngText(Buffer.from('GIF89a...'), 'x.gif')).toThrow('x.gif: not a PNG file (bad signature)');
    expect(() => readPngText(Buffer.alloc(0))).toThrow('PNG: not a PNG file (bad signature)');
  });

  it('rejects a corrupt CRC, naming the chunk', () => {
    const png = encodePng(gradient(4, 4), 4, 4, { parameters: '{"seed":1}' });
    const chunks = readPngChunks(png);
    const itxt = chunks.find((c) => c.type === 'iTXt');
    const corrupt = Buffer.from(png);
    // Flip one bit of the text: the stored CRC no longer matches.
    flipBits(corrupt, (itxt?.offset ?? 0) + 8 + 12, 0x01);
    expect(() => readPngText(corrupt, 'a.png')).toThrow(
      new RegExp(`^a\\.png: corrupt PNG: chunk iTXt at byte ${itxt?.offset} has CRC 0x[0-9a-f]{8} but its contents give 0x[0-9a-f]{8}$`),
    );
    const idat = chunks.find((c) => c.type === 'IDAT');
    const badImage = Buffer.from(png);
    flipBits(badImage, (idat?.offset ?? 0) + 8, 0x80);
    expect(() => readPngText(badImage)).toThrow(/corrupt PNG: chunk IDAT/);
    // pngjs agrees that the file is corrupt.
    expect(() => PNG.sync.read(badImage, { checkCRC: true })).toThrow();
  });

  it('rejects a truncated file', () => {
    const png = encodePng(gradient(4, 4), 4, 4, { parameters: 'x' });
    expect(() => readPngText(png.subarray(0, png.byteLength - 12))).toThrow(
      `PNG: truncated PNG: no IEND chunk (file ends at byte ${png.byteLength - 12})`,
    );
    expect(() => readPngText(png.subarray(0, png.byteLength - 8))).toThrow(
      `PNG: truncated PNG: chunk header at byte ${png.byteLength - 12} is cut off`,
    );
    expect(() => readPngText(png.subarray(0, 45))).toThrow(/truncated PNG: chunk iTXt at byte 33 runs past the end of the file/);
    expect(() => readPngText(png.subarray(0, 8))).toThrow('truncated PNG: no IHDR chunk (file ends at byte 8)');
  });

  it('rejects a file that does not start with IHDR', () => {
    const png = encodePng(new Uint8Array(3), 1, 1);
    const swapped = Buffer.concat([png.subarray(0, 8), pngChunk('tEXt', Buffer.from('a\0b')), png.subarray(8)]);
    expect(() => readPngText(swapped)).toThrow('corrupt PNG: first chunk is tEXt, not IHDR');
  });

  it('rejects malformed text chunks', () => {
    const base = encodePng(new Uint8Array(3), 1, 1);
    expect(() => readPngText(withChunksAfterIhdr(base, pngChunk('tEXt', Buffer.from('no keyword end'))))).toThrow(
      'PNG: corrupt PNG: tEXt chunk at byte 33 has no valid keyword',
    );
    expect(() => readPngText(withChunksAfterIhdr(base, pngChunk('iTXt', Buffer.from('k\0\0\0only-language'))))).toThrow(
      'iTXt chunk at byte 33 is truncated',
    );
    expect(() =>
      readPngText(withChunksAfterIhdr(base, pngChunk('zTXt', Buffer.from('k\0\0not deflate data')))),
    ).toThrow(/zTXt chunk at byte 33: cannot decompress/);
  });
});
