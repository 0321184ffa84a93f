import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { exampleManifest } from '@pixelflow/schemas/testing';
import { imageSeed } from '@pixelflow/schemas';
import { blockNoiseFromNormals, fillStandardNormal, philox4x32 } from '../src/noise.ts';
import { checkNoise, drawNoise, drawRequestNoise, NoiseShapeError } from '../src/noise-set.ts';

const hex = (words: Uint32Array) => [...words].map((v) => v.toString(16).padStart(8, '0')).join(' ');

function moments(values: Float32Array): { mean: number; variance: number } {
  let sum = 0;
  let squares = 0;
  for (const v of values) {
    sum += v;
    squares += v * v;
  }
  const mean = sum / values.length;
  return { mean, variance: squares / values.length - mean * mean };
}

function sha256(values: Float32Array): string {
  return createHash('sha256').update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength)).digest('hex');
}

describe('Philox4x32-10', () => {
  it('matches the Random123 known-answer vectors', () => {
    expect(hex(philox4x32([0, 0, 0, 0], [0, 0]))).toBe('6627e8d5 e169c58d bc57ac4c 9b00dbd8');
    const ones = 0xffffffff;
    expect(hex(philox4x32([ones, ones, ones, ones], [ones, ones]))).toBe('408f276d 41c83b0e a20bc7c6 6d5451fd');
    expect(hex(philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]))).toBe(
      'd16cfe09 94fdcceb 5001e420 24126ea1',
    );
  });
});

describe('standard normals', () => {
  it('have mean 0 and variance 1 (n = 400k: 5 standard errors = 0.008 and 0.011)', () => {
    const { mean, variance } = moments(fillStandardNormal(new Float32Array(400_000), 123, 0));
    expect(Math.abs(mean)).toBeLessThan(0.008);
    expect(Math.abs(variance - 1)).toBeLessThan(0.011);
  });

  it('differ between seeds and between streams of one seed', () => {
    const a = fillStandardNormal(new Float32Array(64), 1, 0);
    expect(fillStandardNormal(new Float32Array(64), 1, 0)).toEqual(a);
    expect(fillStandardNormal(new Float32Array(64), 2, 0)).not.toEqual(a);
    expect(fillStandardNormal(new Float32Array(64), 1, 1)).not.toEqual(a);
  });

  it('are the same in another process', async () => {
    const here = sha256(drawRequestNoise(exampleManifest(), 42, 2).stage0);
    const module = fileURLToPath(new URL('../src/noise-set.ts', import.meta.url));
    const testing = fileURLToPath(new URL('../../schemas/src/testing.ts', import.meta.url));
    const script = `
      const { drawRequestNoise } = await import(${JSON.stringify(module)});
      const { exampleManifest } = await import(${JSON.stringify(testing)});
      const { createHash } = await import('node:crypto');
      const x = drawRequestNoise(exampleManifest(), 42, 2).stage0;
      console.log(createHash('sha256').update(new Uint8Array(x.buffer, x.byteOffset, x.byteLength)).digest('hex'));`;
    const there = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], (error, stdout) =>
        error ? reject(error) : resolve(stdout.trim()),
      );
    });
    expect(there).toBe(here);
  });
});

describe('block noise', () => {
  // 2 x 200k blocks laid out as one image row pair: (tl, tr, bl, br) per block.
  const blocks = 200_000;
  const width = 2 * blocks;
  const noise = blockNoiseFromNormals(fillStandardNormal(new Float32Array(2 * width), 7, 3), 2, width);
  const entry = (block: number, corner: number) => noise[(corner >> 1) * width + 2 * block + (corner & 1)] as number;

  it('has covariance (1 - gamma) I + gamma 11^T + eps I: 1 on the diagonal, -1/3 off it (tolerance 0.012, ~5 standard errors)', () => {
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 4; j++) {
        let sum = 0;
        for (let b = 0; b < blocks; b++) sum += entry(b, i) * entry(b, j);
        const expected = i === j ? 1 + 1e-6 : -1 / 3;
        expect(Math.abs(sum / blocks - expected), `cov[${i}][${j}]`).toBeLessThan(0.012);
      }
    }
  });

  it('sums to nearly zero within each block (4 * 1e-3 * mean of the normals)', () => {
    let worst = 0;
    for (let b = 0; b < blocks; b++) worst = Math.max(worst, Math.abs(entry(b, 0) + entry(b, 1) + entry(b, 2) + entry(b, 3)));
    expect(worst).toBeLessThan(0.02);
    expect(worst).toBeGreaterThan(0); // the 1e-6 regulariser makes it not exactly singular
  });

  it('rejects odd sides', () => {
    expect(() => blockNoiseFromNormals(new Float32Array(9), 3, 3)).toThrow(RangeError);
  });
});

describe('noise of a request', () => {
  const manifest = exampleManifest();

  it('gives image i of seed s the noise of image 0 of seed s + i, at any batch size', () => {
    const batch = drawRequestNoise(manifest, 4294967295, 3);
    const single = drawRequestNoise(manifest, imageSeed(4294967295, 2), 1);
    expect(imageSeed(4294967295, 2)).toBe(1);
    const perImage = single.stage0.length;
    expect(batch.stage0.subarray(2 * perImage)).toEqual(single.stage0);
    batch.blocks.forEach((block, k) => {
      const size = single.blocks[k]!.length;
      expect(block.subarray(2 * size, 3 * size)).toEqual(single.blocks[k]);
    });
    expect(batch.stage0.subarray(0, perImage)).not.toEqual(batch.stage0.subarray(perImage, 2 * perImage));
  });

  it('has the shapes the model needs, and checkNoise names the tensor that does not', () => {
    const noise = drawNoise(manifest, [5, 6]);
    expect(noise.stage0).toHaveLength(2 * 3 * 32 * 32);
    expect(noise.blocks.map((b) => b.length)).toEqual([64, 128, 256].map((s) => 2 * 3 * s * s));
    expect(() => checkNoise(noise, manifest, 2)).not.toThrow();
    expect(() => checkNoise(noise, manifest, 3)).toThrow(NoiseShapeError);
    const short = { stage0: noise.stage0, blocks: [noise.blocks[0]!, noise.blocks[1]!, new Float32Array(5)] };
    expect(() => checkNoise(short, manifest, 2)).toThrow(/noise_block_3 must be float32 \[2,3,256,256\]/);
  });
});
