import { DEFAULT_GAMMA } from './scheduler.ts';

// Seeded Gaussian noise of our own, so that the same seed gives the same images on any machine,
// in any process, at any batch size.
//
// The algorithm (documented in docs/model.md, "Seeded noise"; changing it changes every user's images):
// - Image i of a request with seed s draws from its own seed s_i = (s + i) mod 2^32, so image i of
//   seed s is image 0 of seed s + i, and images of one request all differ.
// - Each noise tensor of an image has a stream number: 0 for the stage-0 noise, k for the normals
//   behind stage k's block noise. Stream (s_i, k) is Philox4x32-10 keyed with (s_i, k), counter
//   (n, 0, 0, 0) for n = 0, 1, 2, ...; each counter gives four 32-bit words, read as two uniforms
//   u = (a >>> 5 * 2^26 + b >>> 6 + 0.5) / 2^53 in (0, 1), turned into two standard normals by
//   Box-Muller: sqrt(-2 ln u1) cos(2 pi u2), sqrt(-2 ln u1) sin(2 pi u2). The normals fill the
//   image's [C, H, W] tensor in row-major order and are rounded to float32.
// - Block noise applies the closed form of PIXELFLOW.md section 4 to those normals, per 2x2 block.
// Philox is the counter-based generator of Random123 (Salmon et al., SC'11), also used by JAX and
// by PyTorch on CUDA; V8's Math.log/cos/sin are its fdlibm port, the same on every platform.

const PHILOX_M0 = 0xd2511f53;
const PHILOX_M1 = 0xcd9e8d57;
const PHILOX_W0 = 0x9e3779b9;
const PHILOX_W1 = 0xbb67ae85;

/** The high 32 bits of the 64-bit product of two uint32, exact in float64 arithmetic. */
function mulHi(a: number, b: number): number {
  const aLo = a & 0xffff;
  const aHi = a >>> 16;
  const bLo = b & 0xffff;
  const bHi = b >>> 16;
  const mid1 = aHi * bLo;
  const mid2 = aLo * bHi;
  const carry = (((aLo * bLo) >>> 16) + (mid1 & 0xffff) + (mid2 & 0xffff)) >>> 16;
  return (aHi * bHi + (mid1 >>> 16) + (mid2 >>> 16) + carry) >>> 0;
}

/** Philox4x32-10 into `out`; allocation-free because it runs once per two normals. */
function philoxInto(out: Uint32Array, counter0: number, counter1: number, counter2: number, counter3: number, key0: number, key1: number): void {
  let c0 = counter0 >>> 0;
  let c1 = counter1 >>> 0;
  let c2 = counter2 >>> 0;
  let c3 = counter3 >>> 0;
  let k0 = key0 >>> 0;
  let k1 = key1 >>> 0;
  for (let round = 0; round < 10; round++) {
    const hi0 = mulHi(PHILOX_M0, c0);
    const lo0 = Math.imul(PHILOX_M0, c0) >>> 0;
    const hi1 = mulHi(PHILOX_M1, c2);
    const lo1 = Math.imul(PHILOX_M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
    k0 = (k0 + PHILOX_W0) >>> 0;
    k1 = (k1 + PHILOX_W1) >>> 0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

/** Philox4x32 with 10 rounds: four uint32 words of counter and two of key -> four random words. */
export function philox4x32(counter: readonly [number, number, number, number], key: readonly [number, number]): Uint32Array {
  const out = new Uint32Array(4);
  philoxInto(out, counter[0], counter[1], counter[2], counter[3], key[0], key[1]);
  return out;
}

const TWO_POW_26 = 67108864;
const TWO_POW_53 = 9007199254740992;

function uniform(a: number, b: number): number {
  return ((a >>> 5) * TWO_POW_26 + (b >>> 6) + 0.5) / TWO_POW_53;
}

/** Fills `out` with standard normals from stream (seed, stream). */
export function fillStandardNormal(out: Float32Array, seed: number, stream: number): Float32Array {
  const words = new Uint32Array(4);
  for (let n = 0, i = 0; i < out.length; n++) {
    philoxInto(words, n, 0, 0, 0, seed, stream);
    const u1 = uniform(words[0] as number, words[1] as number);
    const u2 = uniform(words[2] as number, words[3] as number);
    const radius = Math.sqrt(-2 * Math.log(u1));
    const angle = 2 * Math.PI * u2;
    out[i++] = radius * Math.cos(angle);
    if (i < out.length) out[i++] = radius * Math.sin(angle);
  }
  return out;
}

/**
 * Correlated block noise from standard normals `z` laid out [..., H, W]: within each 2x2 block the
 * covariance is (1 - gamma) I + gamma 11^T + eps I. The closed form splits z into its block mean and
 * the deviation from it, exact where a float32 Cholesky factor of this nearly singular matrix is not.
 */
export function blockNoiseFromNormals(
  z: Float32Array,
  height: number,
  width: number,
  gamma: number = DEFAULT_GAMMA,
  eps = 1e-6,
): Float32Array {
  if (height % 2 || width % 2) throw new RangeError(`block noise needs even sides, got ${height}x${width}`);
  const plane = height * width;
  if (z.length % plane) throw new RangeError(`${z.length} values do not form ${height}x${width} planes`);
  const deviationScale = Math.sqrt(1 - gamma + eps);
  const meanScale = Math.sqrt(1 + 3 * gamma + eps);
  const out = new Float32Array(z.length);
  for (let base = 0; base < z.length; base += plane) {
    for (let y = 0; y < height; y += 2) {
      for (let x = 0; x < width; x += 2) {
        const i00 = base + y * width + x;
        const i01 = i00 + 1;
        const i10 = i00 + width;
        const i11 = i10 + 1;
        const a = z[i00] as number;
        const b = z[i01] as number;
        const c = z[i10] as number;
        const d = z[i11] as number;
        const mean = (a + b + c + d) / 4;
        const shared = meanScale * mean;
        out[i00] = deviationScale * (a - mean) + shared;
        out[i01] = deviationScale * (b - mean) + shared;
        out[i10] = deviationScale * (c - mean) + shared;
        out[i11] = deviationScale * (d - mean) + shared;
      }
    }
  }
  return out;
}
