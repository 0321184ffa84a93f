// bench/png: our PNG encoder (adaptive row filters, zlib level 9, the parameters as iTXt) against
// pngjs (the common pure-JS encoder, its defaults) on images like the ones the service writes, in one
// process, and the same encoder through a PngEncoderPool (one thread, its default). `pnpm bench:png`.
// Prints milliseconds per image, bytes, ours / pngjs, and for the pool: milliseconds per image with
// 20 encodes in flight, and the milliseconds per image the calling thread's event loop was busy
// (performance.eventLoopUtilization; for the synchronous encoders that is their whole time).

import { PNG } from 'pngjs';
import { encodePng, PngEncoderPool } from '@pixelflow/formats';

/** A sampler-like image: smooth structure plus pixel noise (xorshift32, so every run is the same). */
function image(side: number): Uint8Array {
  const rgb = new Uint8Array(side * side * 3);
  let state = 12345;
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      for (let c = 0; c < 3; c++) {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        const noise = ((state >>> 0) % 41) - 20;
        const value = 128 + 60 * Math.sin(x / 17 + c) + 50 * Math.cos(y / 23) + noise;
        rgb[(y * side + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(value)));
      }
    }
  }
  return rgb;
}

function pngjs(rgb: Uint8Array, side: number): Buffer {
  const png = new PNG({ width: side, height: side });
  for (let p = 0; p < side * side; p++) {
    png.data[p * 4] = rgb[p * 3] as number;
    png.data[p * 4 + 1] = rgb[p * 3 + 1] as number;
    png.data[p * 4 + 2] = rgb[p * 3 + 2] as number;
    png.data[p * 4 + 3] = 255;
  }
  return PNG.sync.write(png, { colorType: 2 });
}

function time(encode: () => Buffer, runs: number): { ms: number; bytes: number } {
  let bytes = 0;
  for (let i = 0; i < 3; i++) bytes = encode().length; // warm-up
  const started = performance.now();
  for (let i = 0; i < runs; i++) encode();
  return { ms: (performance.now() - started) / runs, bytes };
}

/** Encodes in batches of `inFlight` (the way a worker hands over a generation's images). */
async function timePool(encode: () => Promise<Buffer>, runs: number, inFlight = 20): Promise<{ ms: number; loopMs: number }> {
  // warm-up: the thread starts and optimises, and the pool keeps the batch's pixel buffers
  await Promise.all(Array.from({ length: inFlight }, encode));
  const elu = performance.eventLoopUtilization();
  const started = performance.now();
  for (let done = 0; done < runs; done += inFlight) {
    await Promise.all(Array.from({ length: Math.min(inFlight, runs - done) }, encode));
  }
  const ms = (performance.now() - started) / runs;
  return { ms, loopMs: performance.eventLoopUtilization(elu).active / runs };
}

const parameters = JSON.stringify({ class_label: 985, seed: 42, steps: [10, 10, 10, 10], cfg_scale: 4 });
const pool = new PngEncoderPool();
console.log('| side | ours ms | ours bytes | pngjs ms | pngjs bytes | ours / pngjs time | pool ms | pool loop ms |');
console.log('|---|---|---|---|---|---|---|---|');
for (const side of [32, 64, 128, 256]) {
  const rgb = image(side);
  const runs = Math.max(10, Math.round(2_000_000 / (side * side)));
  const ours = time(() => encodePng(rgb, side, side, { parameters }), runs);
  const theirs = time(() => pngjs(rgb, side), runs);
  if (!(await pool.encode(rgb, side, side, { parameters })).equals(encodePng(rgb, side, side, { parameters }))) {
    throw new Error(`the pool's PNG of ${side} px differs from encodePng's`);
  }
  const pooled = await timePool(() => pool.encode(rgb, side, side, { parameters }), runs);
  console.log(
    `| ${side} | ${ours.ms.toFixed(2)} | ${ours.bytes} | ${theirs.ms.toFixed(2)} | ${theirs.bytes} | ${(ours.ms / theirs.ms).toFixed(2)}x ` +
      `| ${pooled.ms.toFixed(2)} | ${pooled.loopMs.toFixed(3)} |`,
  );
}
await pool.close();
