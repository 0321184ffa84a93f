import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NpyError, parseNpy, readNpy, readNpyAs, serializeNpy, writeNpy, type NpyArray } from '../src/npy.ts';

const MAGIC = [0x93, ...Buffer.from('NUMPY')];

/** Builds .npy bytes by hand, the way numpy lays them out, for any header text and version. */
function craftNpy(header: string, data: Uint8Array, major = 1): Uint8Array {
  const headerBytes = Buffer.from(header, major === 3 ? 'utf8' : 'latin1');
  const lengthBytes = major === 1 ? 2 : 4;
  const preamble = Buffer.alloc(6 + 2 + lengthBytes);
  preamble.set(MAGIC, 0);
  preamble[6] = major;
  preamble[7] = 0;
  if (major === 1) preamble.writeUInt16LE(headerBytes.length, 8);
  else preamble.writeUInt32LE(headerBytes.length, 8);
  return Buffer.concat([preamble, headerBytes, data]);
}

const f4Bytes = (values: number[]) => new Uint8Array(Float32Array.from(values).buffer);

const samples: NpyArray[] = [
  { dtype: '<f4', shape: [2, 3], data: Float32Array.from([0, -1.5, 3.25, 1e-20, -0, Number.POSITIVE_INFINITY]) },
  { dtype: '<f8', shape: [4], data: Float64Array.from([Math.PI, -Number.MAX_VALUE, Number.MIN_VALUE, 0.1]) },
  { dtype: '<i8', shape: [3, 1], data: BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n, 1000n]) },
  { dtype: '<i4', shape: [2, 2, 1], data: Int32Array.from([-(2 ** 31), 2 ** 31 - 1, 0, 7]) },
  { dtype: '|u1', shape: [5], data: Uint8Array.from([0, 1, 127, 128, 255]) },
  { dtype: '|b1', shape: [2, 2], data: Uint8Array.from([1, 0, 0, 1]) },
  { dtype: '<f4', shape: [], data: Float32Array.from([42]) },
  { dtype: '<i8', shape: [0, 3], data: new BigInt64Array(0) },
];

describe('npy round trip', () => {
  it.each(samples.map((array) => [`${array.dtype} (${array.shape.join(', ')})`, array] as const))(
    '%s survives serialize + parse',
    (_title, array) => {
      const bytes = serializeNpy(array);
      // numpy aligns the data to 64 bytes; so do we.
      expect((bytes.byteLength - array.data.byteLength) % 64).toBe(0);
      const parsed = parseNpy(bytes);
      expect(parsed.dtype).toBe(array.dtype);
      expect(parsed.shape).toEqual(array.shape);
      expect(parsed.data.constructor).toBe(array.data.constructor);
      expect(Array.from(parsed.data as ArrayLike<unknown>)).toEqual(Array.from(array.data as ArrayLike<unknown>));
    },
  );

  it('writes the header numpy writes for version 1.0', () => {
    const bytes = serializeNpy({ dtype: '<f4', shape: [3], data: new Float32Array(3) });
    expect(Array.from(bytes.subarray(0, 8))).toEqual([...MAGIC, 1, 0]);
    const header = Buffer.from(bytes.subarray(10, 10 + Buffer.from(bytes).readUInt16LE(8))).toString('latin1');
    expect(header).toMatch(/^\{'descr': '<f4', 'fortran_order': False, 'shape': \(3,\), \} *\n$/);
  });

  it('parses a view into a larger, unaligned buffer', () => {
    const array: NpyArray = { dtype: '<f8', shape: [2], data: Float64Array.from([1.5, -2.5]) };
    const bytes = serializeNpy(array);
    const padded = new Uint8Array(bytes.byteLength + 3);
    padded.set(bytes, 3);
    expect(Array.from(parseNpy(padded.subarray(3)).data as Float64Array)).toEqual([1.5, -2.5]);
  });

  it('reads and writes files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pixelflow-npy-'));
    try {
      const path = join(dir, 'x.npy');
      await writeNpy(path, { dtype: '<i4', shape: [2], data: Int32Array.from([3, -4]) });
      expect(Array.from((await readNpy(path)).data as Int32Array)).toEqual([3, -4]);
      const typed = await readNpyAs(path, '<i4');
      expect(typed.data).toBeInstanceOf(Int32Array);
      await expect(readNpyAs(path, '<f4')).rejects.toThrow(`${path}: expected npy dtype <f4, found <i4`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses to write data that does not fill the shape', () => {
    expect(() => serializeNpy({ dtype: '<f4', shape: [2, 2], data: new Float32Array(3) })).toThrow(NpyError);
  });
});

describe('npy versions', () => {
  const header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n";
  it.each([1, 2, 3])('reads format version %i.0', (major) => {
    const parsed = parseNpy(craftNpy(header, f4Bytes([0.5, 2]), major));
    expect(parsed.shape).toEqual([2]);
    expect(Array.from(parsed.data as Float32Array)).toEqual([0.5, 2]);
  });

  it('rejects an unknown format version', () => {
    expect(() => parseNpy(craftNpy(header, f4Bytes([0.5, 2]), 4), 'v4.npy')).toThrow(
      'v4.npy: npy format version 4.0 is not supported',
    );
  });
});

describe('npy rejects what it cannot represent', () => {
  it('rejects big-endian data', () => {
    const bytes = craftNpy("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }\n", new Uint8Array(4));
    expect(() => parseNpy(bytes, 'be.npy')).toThrow(/^be\.npy: big-endian npy data \('>f4'\) is not supported/);
  });

  it('rejects Fortran order', () => {
    const bytes = craftNpy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }\n", new Uint8Array(16));
    expect(() => parseNpy(bytes, 'f.npy')).toThrow('f.npy: Fortran-order npy data is not supported');
  });

  it('rejects dtypes outside the supported set', () => {
    const bytes = craftNpy("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }\n", new Uint8Array(8));
    expect(() => parseNpy(bytes, 'c.npy')).toThrow("c.npy: npy dtype '<c8' is not supported");
  });

  it('rejects structured dtypes', () => {
    const bytes = craftNpy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }\n", new Uint8Array(4));
    expect(() => parseNpy(bytes, 's.npy')).toThrow("s.npy: npy header field 'descr' is missing or unsupported");
  });

  it('rejects data that does not match the shape', () => {
    const bytes = craftNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }\n", f4Bytes([1, 2]));
    expect(() => parseNpy(bytes, 't.npy')).toThrow('t.npy: npy data is 8 bytes but shape (3) of <f4 needs 12');
  });

  it('rejects files that are not npy', () => {
    expect(() => parseNpy(Buffer.from('PK\x03\x04 not an npy file'), 'z.npz')).toThrow('z.npz: not an npy file');
    expect(() => parseNpy(new Uint8Array(0), 'empty.npy')).toThrow('empty.npy: not an npy file');
  });
});

describe('older npy files', () => {
  // numpy before 1.14 aligned data to 16 bytes, not 64; the data offset must come from the header length.
  it('reads a header that is not 64-byte aligned', () => {
    const header = "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }".padEnd(69, ' ') + '\n';
    const parsed = parseNpy(craftNpy(header, new Uint8Array(BigInt64Array.from([5n, -6n]).buffer)));
    expect(Array.from(parsed.data as BigInt64Array)).toEqual([5n, -6n]);
  });
});

