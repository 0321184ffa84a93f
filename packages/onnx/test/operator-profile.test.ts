import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadModelDir } from '@pixelflow/formats';
import { profileOperators } from '../src/operator-profile.ts';

const TINY = fileURLToPath(new URL('../../../test/fixtures/tiny/', import.meta.url));
const EMBEDDED = fileURLToPath(new URL('../../../models/pixelflow-mnist/', import.meta.url));

describe('profileOperators', () => {
  // The export writes LayerNorm, RMSNorm and tanh-GELU in the forms onnxruntime's fusions match
  // (pytorch/pixelflow/network.py): each must arrive at run time as one kernel, not a dozen
  // elementwise passes over the activations.
  for (const [name, dir] of [['the tiny fixture', TINY], ['the embedded model', EMBEDDED]] as const) {
    it(`shows ${name} running fused norm and GELU kernels, with no elementwise remains`, async () => {
      const model = await loadModelDir(dir);
      const side = model.manifest.resolution;
      const profile = await profileOperators(model, [2, model.manifest.architecture.in_channels, side, side], { runs: 2 });
      const nodes = new Map(profile.operators.map((op) => [op.opType, op.nodes]));
      const depth = model.manifest.architecture.depth;
      // Per block: one LayerNorm, the q and k RMSNorms and the MLP's RMSNorm; one LayerNorm at the end.
      expect(nodes.get('LayerNormalization')).toBe(depth + 1);
      expect(nodes.get('SimplifiedLayerNormalization')).toBe(3 * depth);
      expect(nodes.get('FastGelu')).toBe(depth);
      for (const unfused of ['Pow', 'Sqrt', 'Tanh', 'ReduceMean']) expect(nodes.has(unfused), unfused).toBe(false);
      expect(profile.runMs).toBeGreaterThan(0);
      const kernelMs = profile.operators.reduce((sum, op) => sum + op.ms, 0);
      expect(kernelMs).toBeGreaterThan(0);
      expect(kernelMs).toBeLessThanOrEqual(profile.runMs * 1.05);
    });
  }
});
