import { readFile, writeFile } from 'node:fs/promises';
import { endianness } from 'node:os';

// NumPy's .npy format (numpy.lib.format): magic, version, a Python-literal
// header dict, then the raw array bytes. Our Python tools write golden vectors
// and fixtures with numpy.save; this module reads them and writes the same
// format back. Only little-endian, C-order arrays of the dtypes below exist in
// this project, so anything else is rejected rather than silently reinterpreted.

const MAGIC = Uint8Array.from([0x93, ...new TextEncoder().encode('NUMPY')]);
/** numpy pads header + preamble to a multiple of 64 bytes so the data is aligned. */
const HEADER_ALIGNMENT = 64;

interface NpyDataTypes {
  '<f4': Float32Array;
  '<f8': Float64Array;
  '<i8': BigInt64Array;
  '<i4': Int32Array;
  '|u1': Uint8Array;
  /** numpy bools, one byte each, 0 or 1. */
  '|b1': Uint8Array;
}

export type NpyDtype = keyof NpyDataTypes;

/** A decoded array; `data` is a typed array in C (row-major) order. `shape` [] is a scalar. */
export type NpyArray = { [D in NpyDtype]: { dtype: D; shape: number[]; data: NpyDataTypes[D] } }[NpyDtype];
export type NpyArrayOf<D extends NpyDtype> = Extract<NpyArray, { dtype: D }>;

const DTYPES: Record<NpyDtype, { bytes: number; view: (buffer: ArrayBuffer) => NpyArray['data'] }> = {
  '<f4': { bytes: 4, view: (b) => new Float32Array(b) },
  '<f8': { bytes: 8, view: (b) => new Float64Array(b) },
  '<i8': { bytes: 8, view: (b) => new BigInt64Array(b) },
  '<i4': { bytes: 4, view: (b) => new Int32Array(b) },
  '|u1': { bytes: 1, view: (b) => new Uint8Array(b) },
  '|b1': { bytes: 1, view: (b) => new Uint8Array(b) },
};

function isNpyDtype(descr: string): descr is NpyDtype {
  return Object.hasOwn(DTYPES, descr);
}

export class NpyError extends Error {
  override name = 'NpyError';
}

// Typed arrays use the host's byte order; every machine we run on is little-endian.
if (endianness() !== 'LE') throw new NpyError('npy: only little-endian hosts are supported');

function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, side) => n * side, 1);
}

/** Reads `'key': value` out of the header's Python dict literal. */
function headerField(header: string, key: string, source: string): string {
  const match = new RegExp(`['"]${key}['"]\\s*:\\s*('[^']*'|"[^"]*"|\\([^)]*\\)|True|False)`).exec(header);
  if (!match?.[1]) throw new NpyError(`${source}: npy header field '${key}' is missing or unsupported: ${header.trim()}`);
  return match[1];
}

function parseHeader(header: string, source: string): { dtype: NpyDtype; shape: number[] } {
  const descr = headerField(header, 'descr', source).slice(1, -1);
  if (descr.startsWith('>')) {
    throw new NpyError(`${source}: big-endian npy data ('${descr}') is not supported; save it little-endian`);
  }
  if (!isNpyDtype(descr)) {
    throw new NpyError(`${source}: npy dtype '${descr}' is not supported (use one of ${Object.keys(DTYPES).join(', ')})`);
  }
  if (headerField(header, 'fortran_order', source) !== 'False') {
    throw new NpyError(`${source}: Fortran-order npy data is not supported; save a C-contiguous array`);
  }
  const shapeText = headerField(header, 'shape', source).slice(1, -1);
  const shape = shapeText
    .split(',')
    .map((side) => side.trim())
    .filter((side) => side !== '')
    .map((side) => {
      if (!/^\d+$/.test(side)) throw new NpyError(`${source}: bad npy shape (${shapeText})`);
      return Number(side);
    });
  return { dtype: descr, shape };
}

/**
 * Decodes .npy bytes (format versions 1.0, 2.0 and 3.0).
 * @param source names the data in error messages, usually its file path
 */
export function parseNpy(bytes: Uint8Array, source = 'npy'): NpyArray {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 10 || !MAGIC.every((byte, i) => bytes[i] === byte)) {
    throw new NpyError(`${source}: not an npy file (bad magic)`);
  }
  const major = view.getUint8(6);
  let headerStart: number;
  let headerLength: number;
  if (major === 1) {
    headerStart = 10;
    headerLength = view.getUint16(8, true);
  } else if (major === 2 || major === 3) {
    if (bytes.byteLength < 12) throw new NpyError(`${source}: truncated npy header`);
    headerStart = 12;
    headerLength = view.getUint32(8, true);
  } else {
    throw new NpyError(`${source}: npy format version ${major}.${view.getUint8(7)} is not supported`);
  }
  const dataStart = headerStart + headerLength;
  if (dataStart > bytes.byteLength) throw new NpyError(`${source}: truncated npy header`);
  // Version 3.0 exists only to allow UTF-8 in the header; 1.0 and 2.0 are latin1.
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(headerStart, dataStart));
  const { dtype, shape } = parseHeader(header, source);

  const byteLength = elementCount(shape) * DTYPES[dtype].bytes;
  if (bytes.byteLength - dataStart !== byteLength) {
    throw new NpyError(
      `${source}: npy data is ${bytes.byteLength - dataStart} bytes but shape (${shape.join(', ')}) of ${dtype} needs ${byteLength}`,
    );
  }
  // Copy into a fresh buffer: the data offset in a Node Buffer need not be
  // aligned for an 8-byte typed array, and callers may keep the result.
  const copy = bytes.buffer.slice(bytes.byteOffset + dataStart, bytes.byteOffset + dataStart + byteLength);
  return { dtype, shape, data: DTYPES[dtype].view(copy as ArrayBuffer) } as NpyArray;
}

/** Encodes an array as .npy format version 1.0, the version numpy itself writes for small headers. */
export function serializeNpy(array: NpyArray): Uint8Array {
  const { dtype, shape, data } = array;
  if (!shape.every((side) => Number.isInteger(side) && side >= 0)) {
    throw new NpyError(`npy: shape (${shape.join(', ')}) must be non-negative integers`);
  }
  if (elementCount(shape) !== data.length) {
    throw new NpyError(`npy: shape (${shape.join(', ')}) holds ${elementCount(shape)} elements but data has ${data.length}`);
  }
  // Python's repr of a tuple: (), (3,), (2, 3).
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${dtype}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const unpadded = MAGIC.length + 4 + dict.length + 1;
  const padding = (HEADER_ALIGNMENT - (unpadded % HEADER_ALIGNMENT)) % HEADER_ALIGNMENT;
  const header = `${dict}${' '.repeat(padding)}\n`;
  if (header.length > 0xffff) throw new NpyError('npy: header too long for format version 1.0');

  const dataBytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(MAGIC.length + 4 + header.length + dataBytes.byteLength);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(dataBytes, 10 + header.length);
  return out;
}

export async function readNpy(path: string): Promise<NpyArray> {
  return parseNpy(await readFile(path), path);
}

/** Reads an .npy file and checks its dtype, so callers get the matching typed array. */
export async function readNpyAs<D extends NpyDtype>(path: string, dtype: D): Promise<NpyArrayOf<D>> {
  const array = await readNpy(path);
  if (array.dtype !== dtype) throw new NpyError(`${path}: expected npy dtype ${dtype}, found ${array.dtype}`);
  return array as NpyArrayOf<D>;
}

export async function writeNpy(path: string, array: NpyArray): Promise<void> {
  await writeFile(path, serializeNpy(array));
}
