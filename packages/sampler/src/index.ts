export { DEFAULT_MODEL_DIR, loadModelDir, MANIFEST_FILE, ModelDirError, type ModelDir } from './model-dir.ts';
export {
  NpyError,
  parseNpy,
  readNpy,
  readNpyAs,
  serializeNpy,
  writeNpy,
  type NpyArray,
  type NpyArrayOf,
  type NpyDtype,
} from './npy.ts';
export type { Shape4, VelocityModel } from './model.ts';
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
export {
  OnnxModel,
  OnnxModelError,
  type GraphOptimizationLevel,
  type OnnxModelOptions,
  type OnnxModelStats,
  type OnnxProvider,
} from './onnx-model.ts';
export { encodePng, pngChunk, PngError, readPngChunks, readPngText, type EncodePngOptions, type PngChunk, type PngFilter } from './png.ts';
export { encodeGeneratedPngs } from './generated-pngs.ts';
export { sampleOptionsFor } from './generation-options.ts';
export {
  CUDA_PROVIDER_FILES,
  CUDA_PROVIDER_LIBRARY,
  DRIVER_LIBRARY,
  cudaProviderNotInstalled,
  cudaProviderProblems,
  explainCudaProviderFailure,
  findLibrary,
  inspectCudaProvider,
  linkedLibraries,
  onnxruntimeLibDir,
  onnxruntimeNodeVersion,
  onnxruntimeVersionOf,
  type CudaProviderExpectations,
  type CudaProviderReport,
} from './cuda-provider.ts';
