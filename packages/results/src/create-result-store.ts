import type { ResultsSettings } from './env.ts';
import { LocalResultStore } from './local-result-store.ts';
import type { ResultStore } from './result-store.ts';
import { S3ResultStore } from './s3-result-store.ts';

// The one place that turns configuration into a result store, for the API and the worker alike.

export type ResultsConfig = ResultsSettings & { RESULTS_DIR: string };

/** The store the configuration names, not checked yet (see openResultStore). */
export function createResultStore(config: ResultsConfig): ResultStore {
  if (config.RESULTS_STORE === 'local') return new LocalResultStore(config.RESULTS_DIR);
  if (config.S3_BUCKET === undefined) throw new Error('RESULTS_STORE=s3 without S3_BUCKET (the env schema requires it)');
  return new S3ResultStore({
    ...(config.S3_ENDPOINT === undefined ? {} : { endpoint: config.S3_ENDPOINT }),
    region: config.S3_REGION,
    bucket: config.S3_BUCKET,
    prefix: config.S3_PREFIX,
    forcePathStyle: config.S3_FORCE_PATH_STYLE,
    ...(config.AWS_ACCESS_KEY_ID === undefined || config.AWS_SECRET_ACCESS_KEY === undefined
      ? {}
      : {
          credentials: {
            accessKeyId: config.AWS_ACCESS_KEY_ID,
            secretAccessKey: config.AWS_SECRET_ACCESS_KEY,
            ...(config.AWS_SESSION_TOKEN === undefined ? {} : { sessionToken: config.AWS_SESSION_TOKEN }),
          },
        }),
  });
}

/** The configured store, checked usable (S3: the bucket answers to these credentials); throws ResultStoreConfigError when not. */
export async function openResultStore(config: ResultsConfig): Promise<ResultStore> {
  const store = createResultStore(config);
  try {
    await store.verify();
  } catch (error) {
    store.close();
    throw error;
  }
  return store;
}
