export { ManifestDefaults, ManifestError, ModelManifest, parseModelManifest } from './model-manifest.ts';
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
  isFinished,
  Job,
  JOB_EVENT_NAMES,
  JobEvent,
  JobEventData,
  JobError,
  JobId,
  JobImage,
  JobProgress,
  JobStatus,
  Problem,
  StagePreview,
  type JobEventName,
  type JobEventPayload,
} from './jobs.ts';
export { CommonEnv, EnvError, intVar, parseEnv } from './env.ts';
export { ClassList, ModelInfo, ModelList, Readiness } from './service-info.ts';
export {
  JobSubmission,
  JobWebhook,
  WEBHOOK_EVENTS,
  WebhookDelivery,
  WebhookDeliveryStatus,
  WebhookEvent,
  WebhookRequest,
} from './webhooks.ts';
