import { imageParameters, type ModelManifest, type ResolvedGeneration } from '@pixelflow/schemas';
import { encodePng } from './png.ts';
import type { SampleResult } from '@pixelflow/sampler';

/**
 * One PNG per generated image, each carrying its parameters (an iTXt `parameters` JSON), as the
 * CLI writes them and the service stores them: a pure function of its inputs, so the same
 * generation gives byte-identical files wherever it runs.
 */
export function encodeGeneratedPngs(
  result: Pick<SampleResult, 'images' | 'width' | 'height'>,
  generation: ResolvedGeneration,
  manifest: Pick<ModelManifest, 'name' | 'resolution' | 'source'>,
  externalNoise: boolean,
): Buffer[] {
  const { width, height } = result;
  const pixels = width * height * 3;
  return Array.from({ length: generation.num_images }, (_, i) =>
    encodePng(result.images.subarray(i * pixels, (i + 1) * pixels), width, height, {
      parameters: JSON.stringify(imageParameters(generation, manifest, i, externalNoise)),
      Software: 'pixelflow-serve',
    }),
  );
}
