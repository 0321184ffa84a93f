import type { ModelManifest, ResolvedGeneration } from '@pixelflow/schemas';
import type { SampleOptions } from './sample.ts';

/**
 * What the sampler is told for a resolved generation request: every image of the request's class,
 * its solver, guidance, shift, steps and seed. The one place that decides it, for the worker, the
 * CLI and the benchmarks alike; the caller adds the model, its signal and its callbacks.
 */
export function sampleOptionsFor(generation: ResolvedGeneration, manifest: ModelManifest): Omit<SampleOptions, 'model'> {
  return {
    manifest,
    classLabels: new Array<number>(generation.num_images).fill(generation.class_label),
    solver: generation.solver,
    cfgScale: generation.cfg_scale,
    noiseShift: generation.noise_shift,
    steps: generation.steps,
    seed: generation.seed,
  };
}
