import type { Readable } from 'node:stream';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { checkedKey, resultKey, ResultStoreConfigError, ResultStoreUnavailableError, type OpenedObject, type ResultStore, type StoredObject } from './result-store.ts';

// RESULTS_STORE=s3: objects in a bucket of S3 or of an S3-compatible server (MinIO, Ceph, R2...),
// under an optional prefix, so that workers and API processes on any machine share them.

export interface S3StoreOptions {
  /** Unset: AWS S3 itself, at the region's endpoint. */
  endpoint?: string;
  region: string;
  bucket: string;
  /** '' or a prefix ending in '/'. */
  prefix: string;
  forcePathStyle: boolean;
  /** Unset: the AWS SDK's default provider chain (AWS_* variables, shared files, instance roles...). */
  credentials?: S3ClientConfig['credentials'];
  /** How long start-up's bucket check may take in all (default START_CHECK_MS). */
  startCheckMs?: number;
}

/**
 * Attempts per S3 call, with the SDK's standard retry strategy: exponential backoff with jitter
 * (base 100 ms, so two retries wait about 0.1 s then 0.2 s) on connection errors, timeouts,
 * throttling and 5xx answers. Three covers a dropped connection or a server restarting behind a
 * load balancer, and keeps an API request for a file under a few seconds when S3 is down, after
 * which it answers 503: longer outages are the client's to wait out (Retry-After).
 */
export const S3_MAX_ATTEMPTS = 3;
/** TCP connect, per attempt: a reachable S3 connects in milliseconds. */
export const S3_CONNECT_TIMEOUT_MS = 2_000;
/** From sending a request to its response's headers, per attempt; an idle socket is dropped after as long. */
export const S3_REQUEST_TIMEOUT_MS = 10_000;
/** Start-up's bucket check, retries included. */
export const START_CHECK_MS = 5_000;
/** DeleteObjects takes at most this many keys. */
const DELETE_BATCH = 1000;

/** The HTTP status of an S3 answer, if there was one. */
function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

/** One line about an SDK error: its code or name, its message and the HTTP status if any. */
function describe(error: unknown): string {
  const e = error as { name?: string; code?: string; message?: string };
  const status = statusOf(error);
  // A bodiless answer (HEAD) leaves the SDK only the status: say that instead of "UnknownError".
  const name = e.name === 'Unknown' || e.name === 'UnknownError' || e.name === undefined ? (e.code ?? 'error') : e.name;
  const message = e.message && e.message !== e.name && e.message !== 'UnknownError' ? `: ${e.message}` : '';
  return `${name}${message}${status === undefined ? '' : ` (HTTP ${status})`}`;
}

function isMissing(error: unknown): boolean {
  const name = (error as { name?: string }).name;
  return name === 'NoSuchKey' || name === 'NotFound' || statusOf(error) === 404;
}

export class S3ResultStore implements ResultStore {
  private readonly client: S3Client;
  private readonly options: S3StoreOptions;

  constructor(options: S3StoreOptions) {
    this.options = options;
    this.client = new S3Client({
      region: options.region,
      forcePathStyle: options.forcePathStyle,
      maxAttempts: S3_MAX_ATTEMPTS,
      retryMode: 'standard',
      requestHandler: { connectionTimeout: S3_CONNECT_TIMEOUT_MS, requestTimeout: S3_REQUEST_TIMEOUT_MS, throwOnRequestTimeout: true, socketTimeout: S3_REQUEST_TIMEOUT_MS },
      // Checksums only where S3 requires them (DeleteObjects): the newer default (CRC32 trailers on
      // every upload) is refused by many S3-compatible servers, and PNGs carry their own CRCs.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
      ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    });
  }

  /** `s3://bucket/prefix`, for messages. */
  get location(): string {
    return `s3://${this.options.bucket}/${this.options.prefix}`;
  }

  private objectKey(key: string): string {
    return this.options.prefix + checkedKey(key);
  }

  /** Runs an S3 call; any failure but "no such object" becomes ResultStoreUnavailableError. */
  private async call<T>(what: string, key: string, send: () => Promise<T>): Promise<T | null> {
    try {
      return await send();
    } catch (error) {
      if (isMissing(error)) return null;
      throw new ResultStoreUnavailableError(`S3 ${what} of ${this.location}${key} failed: ${describe(error)}`, { cause: error });
    }
  }

  async put(key: string, data: Uint8Array): Promise<void> {
    const Key = this.objectKey(key);
    // S3 makes an object visible only once it is whole: readers see all of it or the older one.
    await this.call('PutObject', key, () => this.client.send(new PutObjectCommand({ Bucket: this.options.bucket, Key, Body: data, ContentLength: data.length, ContentType: 'image/png' })));
  }

  async get(key: string): Promise<Buffer | null> {
    const opened = await this.open(key);
    if (!opened) return null;
    const chunks: Buffer[] = [];
    for await (const chunk of opened.body) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async open(key: string): Promise<OpenedObject | null> {
    const Key = this.objectKey(key);
    const response = await this.call('GetObject', key, () => this.client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key })));
    if (!response) return null;
    // In Node the SDK's body is the HTTP response itself: a Readable, read as it arrives.
    const body = response.Body as Readable;
    return { body, size: response.ContentLength ?? 0, etag: response.ETag ?? '""' };
  }

  async stat(key: string): Promise<StoredObject | null> {
    const Key = this.objectKey(key);
    const response = await this.call('HeadObject', key, () => this.client.send(new HeadObjectCommand({ Bucket: this.options.bucket, Key })));
    if (!response) return null;
    return { size: response.ContentLength ?? 0, etag: response.ETag ?? '""' };
  }

  async presignedUrl(key: string, seconds: number): Promise<string> {
    // Signed here with the store's credentials, no request made: the URL works until it expires.
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.options.bucket, Key: this.objectKey(key) }), { expiresIn: seconds });
  }

  /** Lists the job's objects page by page and deletes each page with one DeleteObjects. */
  async deleteJob(jobId: string): Promise<void> {
    const Prefix = this.options.prefix + resultKey(jobId, 'x').slice(0, -1);
    let ContinuationToken: string | undefined;
    do {
      const page = await this.call('ListObjectsV2', `${jobId}/`, () =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.options.bucket, Prefix, MaxKeys: DELETE_BATCH, ContinuationToken })),
      );
      const objects = (page?.Contents ?? []).flatMap((object) => (object.Key === undefined ? [] : [{ Key: object.Key }]));
      if (objects.length > 0) {
        const deleted = await this.call('DeleteObjects', `${jobId}/`, () =>
          this.client.send(new DeleteObjectsCommand({ Bucket: this.options.bucket, Delete: { Objects: objects, Quiet: true } })),
        );
        const failed = deleted?.Errors ?? [];
        if (failed.length > 0) {
          const first = failed[0]!;
          throw new ResultStoreUnavailableError(`S3 DeleteObjects of ${this.location}${jobId}/ failed for ${failed.length} objects, e.g. ${first.Key}: ${first.Code} ${first.Message}`);
        }
      }
      ContinuationToken = page?.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken !== undefined);
  }

  /** HeadBucket within startCheckMs: the bucket exists, the endpoint answers and the credentials are accepted. */
  async verify(): Promise<void> {
    const { bucket, endpoint } = this.options;
    const where = endpoint ?? `AWS S3 (${this.options.region})`;
    const limitMs = this.options.startCheckMs ?? START_CHECK_MS;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal: AbortSignal.timeout(limitMs) });
    } catch (error) {
      throw new ResultStoreConfigError(`result store: ${this.checkFailure(error, where, limitMs)}`, { cause: error });
    }
  }

  private checkFailure(error: unknown, where: string, limitMs: number): string {
    const { bucket } = this.options;
    const status = statusOf(error);
    const name = (error as { name?: string }).name;
    if (status === 404) return `S3_BUCKET: no bucket ${JSON.stringify(bucket)} at ${where} (create it, or fix S3_BUCKET)`;
    if (status === 403) return `S3 refused the credentials for bucket ${JSON.stringify(bucket)} at ${where} (HTTP 403): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket's policy`;
    if (status === 301 || status === 400) return `S3_REGION: bucket ${JSON.stringify(bucket)} at ${where} refused the request (HTTP ${status}); is S3_REGION (${this.options.region}) its region?`;
    if (name === 'CredentialsProviderError') return `no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or another source of the AWS default provider chain): ${describe(error)}`;
    if (name === 'AbortError' || name === 'TimeoutError') return `S3_ENDPOINT: ${where} did not answer within ${limitMs / 1000} s`;
    if (status === undefined) return `S3_ENDPOINT: ${where} is unreachable: ${describe(error)}`;
    return `checking bucket ${JSON.stringify(bucket)} at ${where} failed: ${describe(error)}`;
  }

  close(): void {
    this.client.destroy();
  }
}
