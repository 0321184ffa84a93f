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
