import { intVar } from '@pixelflow/schemas';
import { z } from 'zod';

// The result store's environment variables, one fragment for the API's and the worker's schemas
// (services/*/src/config.ts extend it and add checkResultsEnv), documented in
// docs/operators/storage.md and docs/operators/running.md's configuration table.

const BUCKET_RULE = 'must be an S3 bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit';
const PREFIX_RULE = "must be key segments of letters, digits, '_', '.' or '-', each ending in '/' (e.g. pixelflow/results/), not starting with '/'";

/** An http(s) URL with nothing past the host and port but an optional path. */
function isEndpoint(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.search === '' && url.hash === '' && url.username === '';
  } catch {
    return false;
  }
}

const trueFalse = z.enum(['true', 'false'], { error: 'must be true or false' });

export const ResultsEnv = z.object({
  /** Where images and previews live: a folder shared by the API and the worker, or an S3 bucket. */
  RESULTS_STORE: z.enum(['local', 's3'], { error: 'must be local or s3' }).default('local'),
  /** How the API serves them: streamed through itself, or as a redirect to a presigned URL (s3 only). */
  RESULTS_REDIRECT: z.enum(['stream', 'presigned'], { error: 'must be stream or presigned' }).default('stream'),
  /** How long a presigned URL works: clients follow the redirect at once, so minutes are plenty. */
  RESULTS_PRESIGN_SECONDS: intVar(10, 7 * 24 * 3600, 300),
  /** Unset: AWS S3 itself; otherwise the S3-compatible server's URL (MinIO: http://minio:9000). */
  S3_ENDPOINT: z.string().refine(isEndpoint, { error: 'must be an http:// or https:// URL such as http://minio:9000' }).optional(),
  S3_REGION: z.string().regex(/^[a-z0-9-]+$/, { error: 'must be a region name such as us-east-1' }).default('us-east-1'),
  S3_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, { error: BUCKET_RULE }).optional(),
  /** Prepended to every key (`<prefix><job id>/image-0.png`), so that one bucket can serve several deployments. */
  S3_PREFIX: z
    .string()
    .regex(/^(?:[A-Za-z0-9_.-]+\/)*[A-Za-z0-9_.-]*$/, { error: PREFIX_RULE })
    .refine((prefix) => !prefix.split('/').includes('..'), { error: PREFIX_RULE })
    .transform((prefix) => (prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`))
    .default(''),
  /** true for servers without virtual-host buckets (MinIO, s3rver, most self-hosted ones): http://host/bucket/key. */
  S3_FORCE_PATH_STYLE: trueFalse.default('false').transform((v) => v === 'true'),
  /**
   * The AWS SDK's own variables, read here too so that a configuration handed to a service in
   * code (tests, tools) carries its credentials; unset, the SDK's default provider chain applies
   * (shared files, AWS_PROFILE, web identity, container and instance roles).
   */
  AWS_ACCESS_KEY_ID: z.string().optional(),
  AWS_SECRET_ACCESS_KEY: z.string().optional(),
  AWS_SESSION_TOKEN: z.string().optional(),
});

export type ResultsSettings = z.output<typeof ResultsEnv>;

/** The rules between the variables, for the schemas that extend ResultsEnv: `.check(checkResultsEnv)`. */
export function checkResultsEnv(ctx: z.core.ParsePayload<ResultsSettings>): void {
  const { RESULTS_STORE, RESULTS_REDIRECT, S3_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY } = ctx.value;
  const issue = (path: string, message: string): void => void ctx.issues.push({ code: 'custom', input: ctx.value, path: [path], message });
  if (RESULTS_STORE === 's3' && S3_BUCKET === undefined) issue('S3_BUCKET', 'is required when RESULTS_STORE=s3');
  if (RESULTS_STORE === 'local' && S3_BUCKET !== undefined) issue('RESULTS_STORE', 'is local (the default) while S3_BUCKET is set: set RESULTS_STORE=s3, or unset S3_BUCKET');
  if ((AWS_ACCESS_KEY_ID === undefined) !== (AWS_SECRET_ACCESS_KEY === undefined)) {
    issue(AWS_ACCESS_KEY_ID === undefined ? 'AWS_ACCESS_KEY_ID' : 'AWS_SECRET_ACCESS_KEY', 'is required with the other half of the key pair (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together)');
  }
  if (RESULTS_STORE === 'local' && RESULTS_REDIRECT === 'presigned') issue('RESULTS_REDIRECT', 'needs RESULTS_STORE=s3 to be presigned (a local folder has no URLs to sign)');
}
