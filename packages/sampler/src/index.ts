export type { Shape4, VelocityModel } from './model.ts';
export { BatchingModel, type BatchInfo, type BatchingModelOptions } from './batching-model.ts';
export {
  computeStages,
  cfgStageWeights,
  dopri5Timestep,
  eulerGrid,
  eulerTimestep,
  scheduleFor,
  ScheduleMismatchError,
  STAGE_GRID_END,
  type Stage,
} from './scheduler.ts';
export { blockNoiseFromNormals, fillStandardNormal, philox4x32 } from './noise.ts';
export { checkNoise, drawNoise, drawRequestNoise, noiseShapes, NoiseShapeError, type NoiseSet } from './noise-set.ts';
export { toRgbBytes, upsampleNearest2x } from './image-ops.ts';
export { guidedVelocity, type GuidanceInput } from './guidance.ts';
export { dopri5Stage, eulerStage, SolverError, type Dopri5Options, type VelocityField } from './solvers.ts';
export {
  sample,
  SamplingError,
  type SampleOptions,
  type SampleResult,
  type Solver,
  type StageEnd,
  type StepProgress,
} from './sample.ts';
export { sampleOptionsFor } from './generation-options.ts';
