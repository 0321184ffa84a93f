import type { Shape4 } from './model.ts';

// Element-wise work on [B, C, H, W] float32 states between model calls. Plain loops over typed
// arrays: this is the sampler's own overhead, measured by bench/sampler against session.run.

export function upsampleNearest2x(x: Float32Array, [batch, channels, height, width]: Shape4): Float32Array {
  const outWidth = 2 * width;
  const out = new Float32Array(batch * channels * 4 * height * width);
  for (let plane = 0; plane < batch * channels; plane++) {
    const source = plane * height * width;
    const target = plane * 4 * height * width;
    for (let y = 0; y < height; y++) {
      const row = target + 2 * y * outWidth;
      for (let xi = 0; xi < width; xi++) {
        const v = x[source + y * width + xi] as number;
        out[row + 2 * xi] = v;
        out[row + 2 * xi + 1] = v;
      }
      out.copyWithin(row + outWidth, row, row + outWidth);
    }
  }
  return out;
}

/** a * x + b * y, element-wise, into a new array. */
export function linearCombination(a: number, x: Float32Array, b: number, y: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = a * (x[i] as number) + b * (y[i] as number);
  return out;
}

function roundHalfToEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * [B, C, H, W] state in about [-1, 1] -> RGB bytes [B, H, W, 3]: round(255 * clamp(x / 2 + 0.5, 0, 1)),
 * each step rounded to float32 and ties to even, as the reference's float32 torch ops do. A
 * one-channel model is shown as grey.
 */
export function toRgbBytes(x: Float32Array, [batch, channels, height, width]: Shape4): Uint8Array {
  if (channels !== 3 && channels !== 1) throw new RangeError(`cannot show ${channels} channels as RGB`);
  const plane = height * width;
  const out = new Uint8Array(batch * plane * 3);
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < 3; c++) {
      const source = (b * channels + (channels === 1 ? 0 : c)) * plane;
      for (let p = 0; p < plane; p++) {
        const shifted = Math.fround(Math.fround((x[source + p] as number) / 2) + 0.5);
        const clamped = shifted < 0 ? 0 : shifted > 1 ? 1 : shifted;
        out[(b * plane + p) * 3 + c] = roundHalfToEven(Math.fround(255 * clamped));
      }
    }
  }
  return out;
}
