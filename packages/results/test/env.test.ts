import { EnvError, parseEnv } from '@pixelflow/schemas';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { checkResultsEnv, createResultStore, LocalResultStore, ResultsEnv, S3ResultStore } from '../src/index.ts';

// The result store's variables as the services parse them: ResultsEnv with its cross-variable rules.

const Schema = ResultsEnv.extend({ RESULTS_DIR: z.string().default('data/results') }).check(checkResultsEnv);
const problems = (env: Record<string, string>): readonly string[] => {
  try {
    parseEnv(Schema, env);
  } catch (error) {
    if (error instanceof EnvError) return error.problems;
    throw error;
  }
  return [];
};

describe('ResultsEnv', () => {
  it('defaults to the local folder, streamed', () => {
    const config = parseEnv(Schema, {});
    expect(config).toMatchObject({ RESULTS_STORE: 'local', RESULTS_REDIRECT: 'stream', RESULTS_PRESIGN_SECONDS: 300, S3_PREFIX: '', S3_FORCE_PATH_STYLE: false });
    expect(createResultStore(config)).toBeInstanceOf(LocalResultStore);
  });

  it('reads an S3 configuration, with the prefix ending in one slash', () => {
    const config = parseEnv(Schema, { RESULTS_STORE: 's3', S3_BUCKET: 'images', S3_ENDPOINT: 'http://minio:9000', S3_PREFIX: 'pf/results', S3_FORCE_PATH_STYLE: 'true', RESULTS_REDIRECT: 'presigned' });
    expect(config).toMatchObject({ S3_PREFIX: 'pf/results/', S3_FORCE_PATH_STYLE: true, RESULTS_REDIRECT: 'presigned' });
    const store = createResultStore(config);
    expect(store).toBeInstanceOf(S3ResultStore);
    expect((store as S3ResultStore).location).toBe('s3://images/pf/results/');
    store.close();
  });

  it('says what is wrong with each bad variable, one problem each', () => {
    expect(problems({ RESULTS_STORE: 'gcs' })).toEqual(['RESULTS_STORE must be local or s3 (got "gcs")']);
    expect(problems({ RESULTS_STORE: 's3' })).toEqual(['S3_BUCKET is required when RESULTS_STORE=s3']);
    expect(problems({ RESULTS_STORE: 's3', S3_BUCKET: 'Bad_Bucket', S3_ENDPOINT: 'minio:9000', S3_PREFIX: '/abs', S3_FORCE_PATH_STYLE: 'yes', RESULTS_REDIRECT: '302' })).toEqual([
      expect.stringMatching(/^RESULTS_REDIRECT must be stream or presigned \(got "302"\)$/),
      expect.stringMatching(/^S3_ENDPOINT must be an http:\/\/ or https:\/\/ URL such as http:\/\/minio:9000 \(got "minio:9000"\)$/),
      expect.stringMatching(/^S3_BUCKET must be an S3 bucket name: .* \(got "Bad_Bucket"\)$/),
      expect.stringMatching(/^S3_PREFIX must be key segments .* \(got "\/abs"\)$/),
      'S3_FORCE_PATH_STYLE must be true or false (got "yes")',
    ]);
    expect(problems({ S3_BUCKET: 'images' })).toEqual(['RESULTS_STORE is local (the default) while S3_BUCKET is set: set RESULTS_STORE=s3, or unset S3_BUCKET']);
    expect(problems({ RESULTS_REDIRECT: 'presigned' })).toEqual(['RESULTS_REDIRECT needs RESULTS_STORE=s3 to be presigned (a local folder has no URLs to sign) (got "presigned")']);
    expect(problems({ RESULTS_STORE: 's3', S3_BUCKET: 'images', AWS_ACCESS_KEY_ID: 'AKIA' })).toEqual([
      'AWS_SECRET_ACCESS_KEY is required with the other half of the key pair (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together)',
    ]);
    expect(problems({ RESULTS_STORE: 's3', S3_BUCKET: 'images', RESULTS_PRESIGN_SECONDS: '5' })).toEqual(['RESULTS_PRESIGN_SECONDS must be an integer from 10 to 604800 (got "5")']);
  });
});
