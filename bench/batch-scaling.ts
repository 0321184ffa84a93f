import type { ModelManifest } from '@pixelflow/schemas';
import type { VelocityModel } from '@pixelflow/sampler';
import { median } from './numbers.ts';

// How a model call's time grows with its batch, at each stage resolution: what the worker's
// batching defaults are chosen from (bench:throughput on the CPU, bench:gpu on a GPU).

export const SCALING_BATCHES = [1, 2, 4, 8, 16] as const;

/** Milliseconds per call, by stage resolution, then by batch size. */
export type BatchScaling = Record<number, Record<number, number>>;

/**
 * Times `calls` calls at each stage resolution and batch size of SCALING_BATCHES and keeps the
 * median of all but the first (which meets a new input shape). `onResolution` hears each
 * resolution's row as it is done (a long GPU run saves as it goes).
 */
export async function batchScaling(
  model: VelocityModel,
  manifest: Pick<ModelManifest, 'architecture' | 'stages'>,
  calls: number,
  onResolution?: (side: number, msByBatch: Record<number, number>) => Promise<void> | void,
): Promise<BatchScaling> {
  if (calls < 2) throw new RangeError('batchScaling: at least 2 calls, the first being untimed');
  const channels = manifest.architecture.in_channels;
  const scaling: BatchScaling = {};
  for (const stage of manifest.stages) {
    const side = stage.resolution;
    const row: Record<number, number> = {};
    for (const batch of SCALING_BATCHES) {
      const x = new Float32Array(batch * channels * side * side).fill(0.1);
      const timestep = new Float32Array(batch).fill(stage.timestep_first);
      const labels = new BigInt64Array(batch);
      const times: number[] = [];
      for (let i = 0; i < calls; i++) {
        const started = performance.now();
        await model.predict(x, [batch, channels, side, side], timestep, labels);
        if (i > 0) times.push(performance.now() - started);
      }
      row[batch] = median(times);
    }
    scaling[side] = row;
    await onResolution?.(side, row);
  }
  return scaling;
}
