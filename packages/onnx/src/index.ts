export {
  defaultIntraOpThreads,
  OnnxModel,
  OnnxModelError,
  type GraphOptimizationLevel,
  type OnnxModelOptions,
  type OnnxModelStats,
  type OnnxProvider,
  type SessionCacheOutcome,
} from './onnx-model.ts';
export { defaultSessionCacheDir, sessionCacheKey } from './session-cache.ts';
export { discardSpareSessionThread, startSessionThreadEarly } from './session-thread.ts';
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
export {
  profileOperators,
  type OperatorProfile,
  type OperatorTime,
  type ProfileOptions,
} from './operator-profile.ts';
