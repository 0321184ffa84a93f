export {
  ManifestArchitecture,
  ManifestClasses,
  ManifestDefaults,
  ManifestError,
  ManifestOnnx,
  ManifestScheduler,
  ManifestSource,
  ManifestStage,
  ModelManifest,
  parseModelManifest,
} from './model-manifest.ts';
export { formatIssuePath, formatIssues } from './issues.ts';
export {
  GenerationError,
  GenerationRequest,
  ImageParameters,
  imageParameters,
  imageSeed,
  MAX_SEED,
  parseGenerationRequest,
  resolveGeneration,
  ResolvedGeneration,
} from './generation.ts';
export {
  FieldProblem,
  FINAL_EVENTS,
  FINISHED_STATUSES,
  Job,
  JOB_EVENT_NAMES,
  JOB_STATUSES,
  JobError,
  JobEventData,
  JobId,
  JobImage,
  JobProgress,
  JobStatus,
  Problem,
  StagePreview,
  type JobEventName,
  type JobEventPayload,
} from './jobs.ts';
export { CommonEnv, EnvError, intVar, LogLevel, parseEnv, RedisPrefix, RedisUrl } from './env.ts';
export { ClassList, ModelInfo, ModelList, ModelStatus, Readiness } from './service-info.ts';
