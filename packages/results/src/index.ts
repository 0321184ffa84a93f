export { createResultStore, openResultStore, type ResultsConfig } from './create-result-store.ts';
export { checkResultsEnv, ResultsEnv, type ResultsSettings } from './env.ts';
export { LocalResultStore } from './local-result-store.ts';
export {
  checkedKey,
  imageKey,
  previewKey,
  ResultKeyError,
  resultKey,
  ResultStoreConfigError,
  ResultStoreUnavailableError,
  type OpenedObject,
  type ResultStore,
  type StoredObject,
} from './result-store.ts';
export { S3_CONNECT_TIMEOUT_MS, S3_MAX_ATTEMPTS, S3_REQUEST_TIMEOUT_MS, S3ResultStore, START_CHECK_MS, type S3StoreOptions } from './s3-result-store.ts';
