import { imageSeed, type ModelManifest } from '@pixelflow/schemas';
import { blockNoiseFromNormals, fillStandardNormal } from './noise.ts';
import type { Shape4 } from './model.ts';

/** Every random tensor of one run: what a caller can supply, and what the sampler reports it used. */
export interface NoiseSet {
  /** Standard normal start of the cascade, float32 [B, C, h0, w0]. */
  stage0: Float32Array;
  /** blocks[k - 1]: correlated block noise added when entering stage k = 1..S-1, float32 [B, C, h_k, w_k]. */
  blocks: Float32Array[];
}

export class NoiseShapeError extends Error {
  override name = 'NoiseShapeError';
}

/** The shape of every tensor of a NoiseSet for `batch` images: [stage0, block 1, ..., block S-1]. */
export function noiseShapes(manifest: ModelManifest, batch: number): Shape4[] {
  const channels = manifest.architecture.in_channels;
  return manifest.stages.map((stage) => [batch, channels, stage.resolution, stage.resolution] as const);
}

function elements(shape: Shape4): number {
  return shape[0] * shape[1] * shape[2] * shape[3];
}

/** Draws the noise of images with the given seeds (one per image; see noise.ts for the algorithm). */
export function drawNoise(manifest: ModelManifest, seeds: readonly number[]): NoiseSet {
  const shapes = noiseShapes(manifest, seeds.length);
  const { gamma, block_noise_eps: eps } = manifest.scheduler;
  const tensors = shapes.map((shape, stream) => {
    const [, channels, height, width] = shape;
    const perImage = channels * height * width;
    const out = new Float32Array(elements(shape));
    seeds.forEach((seed, i) => {
      const normals = fillStandardNormal(new Float32Array(perImage), seed, stream);
      out.set(stream === 0 ? normals : blockNoiseFromNormals(normals, height, width, gamma, eps), i * perImage);
    });
    return out;
  });
  return { stage0: tensors[0] as Float32Array, blocks: tensors.slice(1) };
}

/** Noise for a request: image i gets seed (seed + i) mod 2^32. */
export function drawRequestNoise(manifest: ModelManifest, seed: number, batch: number): NoiseSet {
  return drawNoise(manifest, Array.from({ length: batch }, (_, i) => imageSeed(seed, i)));
}

/** Throws NoiseShapeError naming the tensor when a supplied NoiseSet does not fit the model and batch. */
export function checkNoise(noise: NoiseSet, manifest: ModelManifest, batch: number): void {
  const shapes = noiseShapes(manifest, batch);
  const tensors = [noise.stage0, ...noise.blocks];
  if (tensors.length !== shapes.length) {
    throw new NoiseShapeError(`noise has ${tensors.length} tensors, the model needs ${shapes.length} (stage 0 and one block noise per later stage)`);
  }
  tensors.forEach((tensor, k) => {
    const shape = shapes[k] as Shape4;
    if (!(tensor instanceof Float32Array) || tensor.length !== elements(shape)) {
      const name = k === 0 ? 'noise_stage0' : `noise_block_${k}`;
      throw new NoiseShapeError(`${name} must be float32 [${shape.join(',')}] (${elements(shape)} values), got ${tensor.length}`);
    }
  });
}
