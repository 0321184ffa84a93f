import { imageParameters, type ModelManifest, type ResolvedGeneration } from '@pixelflow/schemas';
import { encodePng } from './png.ts';
import type { PngEncoderPool } from './png-pool.ts';
import type { SampleResult } from '@pixelflow/sampler';

type GeneratedImages = Pick<SampleResult, 'images' | 'width' | 'height'>;
type ManifestPart = Pick<ModelManifest, 'name' | 'resolution' | 'source'>;

/** Image `i`'s pixels and text chunks, the same for both encoders below. */
function generatedImage(
  result: GeneratedImages,
  generation: ResolvedGeneration,
  manifest: ManifestPart,
  externalNoise: boolean,
  i: number,
): { rgb: Uint8Array; text: Record<string, string> } {
  const pixels = result.width * result.height * 3;
  return {
    rgb: result.images.subarray(i * pixels, (i + 1) * pixels),
    text: {
      parameters: JSON.stringify(imageParameters(generation, manifest, i, externalNoise)),
      Software: 'pixelflow-serve',
    },
  };
}

/**
 * One PNG per generated image, each carrying its parameters (an iTXt `parameters` JSON), as the
 * CLI writes them and the service stores them: a pure function of its inputs, so the same
 * generation gives byte-identical files wherever it runs. Synchronous (about 7 ms of this thread
 * per 256 px image); encodeGeneratedPngsWith gives the same files from a PngEncoderPool.
 */
export function encodeGeneratedPngs(
  result: GeneratedImages,
  generation: ResolvedGeneration,
  manifest: ManifestPart,
  externalNoise: boolean,
): Buffer[] {
  return Array.from({ length: generation.num_images }, (_, i) => {
    const { rgb, text } = generatedImage(result, generation, manifest, externalNoise, i);
    return encodePng(rgb, result.width, result.height, text);
  });
}

/**
 * encodeGeneratedPngs's files, byte for byte, encoded on `pool`'s threads. The pixels are copied
 * before this returns, so `result.images` may be reused at once. Rejects with the first failure.
 */
export function encodeGeneratedPngsWith(
  pool: Pick<PngEncoderPool, 'encode'>,
  result: GeneratedImages,
  generation: ResolvedGeneration,
  manifest: ManifestPart,
  externalNoise: boolean,
): Promise<Buffer[]> {
  return Promise.all(
    Array.from({ length: generation.num_images }, (_, i) => {
      const { rgb, text } = generatedImage(result, generation, manifest, externalNoise, i);
      return pool.encode(rgb, result.width, result.height, text);
    }),
  );
}
