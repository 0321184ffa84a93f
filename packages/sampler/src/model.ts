// The network as the sampler sees it: any function from (x, timestep, class labels) to velocity.
// Samplers are written against this interface only, so a test can hand them a closed-form field
// and the service can hand them an onnxruntime session (onnx-model.ts) or, later, a batcher that
// merges several jobs into one call.

/** [batch, channels, height, width] */
export type Shape4 = readonly [number, number, number, number];

export interface VelocityModel {
  /**
   * One forward pass. `x` is float32 [B,C,H,W] row-major, `timestep` float32 [B] (model time,
   * 0..num_train_timesteps-1), `classLabels` int64 [B] (the manifest's null_label for the
   * unconditional branch). Resolves to the velocity, float32 [B,C,H,W]. The callee must not keep
   * or modify the inputs after it resolves, and the caller owns the returned array.
   */
  predict(x: Float32Array, shape: Shape4, timestep: Float32Array, classLabels: BigInt64Array): Promise<Float32Array>;
}
