import type { ModelManifest } from './model-manifest.ts';

// Test support shared by every package's tests (import from
// '@pixelflow/schemas/testing'): valid example documents to mutate, so each
// test states only the field it is about.

/**
 * A manifest shaped like the released XL model's schedule (PIXELFLOW.md §3) on a
 * toy-sized network: four stages 32..256, 1000 train timesteps, gamma -1/3. The
 * stage constants are the exact values (the sampler recomputes and compares them).
 * Returns a fresh object each call.
 */
export function exampleManifest(): ModelManifest {
  return {
    format: 'pixelflow-onnx',
    format_version: 1,
    name: 'toy',
    model_file: 'model.onnx',
    external_data_file: null,
    dtype: 'fp32',
    resolution: 256,
    architecture: {
      in_channels: 3,
      out_channels: 3,
      patch_size: 4,
      num_attention_heads: 2,
      attention_head_dim: 8,
      hidden_size: 16,
      depth: 1,
      num_classes: 3,
      parameters: 1234,
    },
    scheduler: {
      num_train_timesteps: 1000,
      num_stages: 4,
      gamma: -1 / 3,
      block_noise_eps: 1e-6,
      cfg_stage_weights: [0, 1 / 6, 2 / 3, 1],
    },
    stages: [
      { index: 0, resolution: 32, start_t: 0, end_t: 0.25, timestep_first: 0, timestep_last: 174.825, renoise: null },
      {
        index: 1,
        resolution: 64,
        start_t: 1 / 7,
        end_t: 0.5,
        timestep_first: 175,
        timestep_last: 425.749,
        renoise: { alpha: 4 / 7, beta: ((4 / 7) * 0.75) / Math.sqrt(1 / 3) },
      },
      {
        index: 2,
        resolution: 128,
        start_t: 1 / 3,
        end_t: 0.75,
        timestep_first: 426,
        timestep_last: 718.707,
        renoise: { alpha: 2 / 3, beta: ((2 / 3) * 0.5) / Math.sqrt(1 / 3) },
      },
      {
        index: 3,
        resolution: 256,
        start_t: 0.6,
        end_t: 1,
        timestep_first: 719,
        timestep_last: 999,
        renoise: { alpha: 0.8, beta: (0.8 * 0.25) / Math.sqrt(1 / 3) },
      },
    ],
    classes: { names: ['cat', 'dog', 'daisy'], null_label: 3 },
    defaults: { solver: 'euler', cfg_scale: 4, noise_shift: 1, steps: [10, 10, 10, 10], num_images: 4, class_label: 2 },
    dopri5: { rtol: 1e-3, atol: 1e-6 },
    onnx: {
      opset: 17,
      inputs: { x: 'x', timestep: 'timestep', class_labels: 'class_labels' },
      outputs: { velocity: 'velocity' },
    },
    source: { weights_sha256: 'ab'.repeat(32), converter: 'pixelflow.convert 0.1', torch_version: '1.13.0' },
  };
}
