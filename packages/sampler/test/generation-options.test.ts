import { parseGenerationRequest, resolveGeneration } from '@pixelflow/schemas';
import { describe, expect, it } from 'vitest';
import { sampleOptionsFor } from '../src/generation-options.ts';
import { loadModelDir } from '../../formats/src/model-dir.ts';
import { TINY_MODEL_DIR } from '../../../test/support/forward-golden.ts';

describe('sampleOptionsFor', () => {
  it('gives every image the request class and passes solver, guidance, shift, steps and seed through', async () => {
    const { manifest } = await loadModelDir(TINY_MODEL_DIR);
    const generation = resolveGeneration(
      parseGenerationRequest({ class: 3, num_images: 3, seed: 9, cfg_scale: 2.5, noise_shift: 2, steps: [1, 2, 3, 4] }),
      manifest,
      () => 0,
    );
    expect(sampleOptionsFor(generation, manifest)).toEqual({
      manifest,
      classLabels: [3, 3, 3],
      solver: 'euler',
      cfgScale: 2.5,
      noiseShift: 2,
      steps: [1, 2, 3, 4],
      seed: 9,
    });
  });

  it('passes Dopri5 through with the steps the request resolved to', async () => {
    const { manifest } = await loadModelDir(TINY_MODEL_DIR);
    const generation = resolveGeneration(parseGenerationRequest({ class: 0, solver: 'dopri5' }), manifest, () => 77);
    const options = sampleOptionsFor(generation, manifest);
    expect(options.solver).toBe('dopri5');
    expect(options.seed).toBe(77);
    expect(options.classLabels).toHaveLength(manifest.defaults.num_images);
  });
});
