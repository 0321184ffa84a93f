import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageKey, previewKey, ResultStoreConfigError, ResultStoreUnavailableError, S3ResultStore, type S3StoreOptions } from '../src/index.ts';
import { startS3Server, S3RVER_ACCESS_KEY_ID, S3RVER_SECRET_ACCESS_KEY, type S3Server } from './support/s3-server.ts';
import { startFaultProxy } from './support/tcp-fault-proxy.ts';

// The S3 store against a real S3-protocol server (s3rver) in a process of its own, over HTTP.

let s3: S3Server;
const stores: S3ResultStore[] = [];

beforeAll(async () => {
  s3 = await startS3Server();
});
afterAll(async () => {
  for (const store of stores) store.close();
  await s3?.stop();
});

function storeFor(overrides: Partial<S3StoreOptions> = {}): S3ResultStore {
  const store = new S3ResultStore({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    bucket: s3.bucket,
    prefix: 'results/',
    forcePathStyle: true,
    credentials: { accessKeyId: S3RVER_ACCESS_KEY_ID, secretAccessKey: S3RVER_SECRET_ACCESS_KEY },
    ...overrides,
  });
  stores.push(store);
  return store;
}

/** Every key in the bucket under `prefix`, read with a client of the test's own. */
async function keysUnder(prefix: string): Promise<string[]> {
  const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: S3RVER_ACCESS_KEY_ID, secretAccessKey: S3RVER_SECRET_ACCESS_KEY } });
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix, ContinuationToken: token }));
    keys.push(...(page.Contents ?? []).map((object) => object.Key!));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  client.destroy();
  return keys.sort();
}

async function readAll(body: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks);
}

describe('S3ResultStore', () => {
  it('puts objects under its prefix, reads them whole and as streams with their size and a stable ETag', async () => {
    const store = storeFor();
    const png = Buffer.alloc(300_000, 7);
    await store.put(imageKey('jput', 0), png);
    await store.put(previewKey('jput', 1), Buffer.from('preview'));
    expect(await keysUnder('results/jput/')).toEqual(['results/jput/image-0.png', 'results/jput/stage-1.png']);

    expect((await store.get(imageKey('jput', 0)))?.equals(png)).toBe(true);
    const opened = await store.open(imageKey('jput', 0));
    expect(opened?.size).toBe(png.length);
    expect(opened?.etag).toMatch(/^"[^"]+"$/);
    expect((await readAll(opened!.body)).equals(png)).toBe(true);
    const stat = await store.stat(imageKey('jput', 0));
    expect(stat).toEqual({ size: png.length, etag: opened!.etag });

    // The same bytes again: the same validator (content-derived), what API replicas rely on.
    await store.put(imageKey('jput', 0), png);
    expect((await store.stat(imageKey('jput', 0)))?.etag).toBe(opened!.etag);
    await store.put(imageKey('jput', 0), Buffer.from('other'));
    expect((await store.stat(imageKey('jput', 0)))?.etag).not.toBe(opened!.etag);
  });

  it('answers null for an object that is not there', async () => {
    const store = storeFor();
    expect(await store.get(imageKey('jnone', 0))).toBeNull();
    expect(await store.open(imageKey('jnone', 0))).toBeNull();
    expect(await store.stat(previewKey('jnone', 3))).toBeNull();
  });

  it('refuses keys that could leave its prefix', async () => {
    const store = storeFor();
    for (const bad of ['../x/y.png', 'job/../../y.png', '/etc/passwd', 'job/a/b.png', 'job']) {
      await expect(store.get(bad)).rejects.toThrow(/invalid result key/);
    }
  });

  it('makes presigned URLs that a plain HTTP client can GET, until they expire', async () => {
    const store = storeFor();
    const png = Buffer.from('signed bytes');
    await store.put(imageKey('jsign', 0), png);
    const url = await store.presignedUrl(imageKey('jsign', 0), 60);
    expect(url.startsWith(`${s3.endpoint}/${s3.bucket}/results/jsign/image-0.png?`)).toBe(true);
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(Buffer.from(await response.arrayBuffer()).equals(png)).toBe(true);
    // Past its expiry (signed to the second: 1 s, then waited 2.5 s), the URL is refused.
    const brief = await store.presignedUrl(imageKey('jsign', 0), 1);
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const expired = await fetch(brief);
    expect(expired.status).toBe(403);
    expect(await expired.text()).toContain('Request has expired');
  });

  it('deletes every object of a job, past one listing page, and nothing of other jobs', { timeout: 120_000 }, async () => {
    const store = storeFor();
    // 1005 objects: more than one ListObjectsV2 page and one DeleteObjects call (1000 each).
    const names = Array.from({ length: 1005 }, (_, i) => `jdel/extra-${i}.png`);
    for (let i = 0; i < names.length; i += 25) await Promise.all(names.slice(i, i + 25).map((key) => store.put(key, Buffer.from('x'))));
    await store.put(imageKey('jdel', 0), Buffer.from('x'));
    // A job id that starts with the other's must keep its objects.
    await store.put(imageKey('jdel2', 0), Buffer.from('keep'));
    expect((await keysUnder('results/jdel/')).length).toBe(1006);

    await store.deleteJob('jdel');
    expect(await keysUnder('results/jdel/')).toEqual([]);
    expect(await keysUnder('results/jdel2/')).toEqual(['results/jdel2/image-0.png']);
    await store.deleteJob('jdel'); // nothing left: no error
    await expect(store.deleteJob('../x')).rejects.toThrow(/invalid result key/);
  });

  it('retries a transient fault (connections reset) and says the store is unavailable once its attempts are spent', async () => {
    await storeFor().put(imageKey('jretry', 0), Buffer.from('retried'));
    const proxy = await startFaultProxy(s3.port);
    try {
      // Three attempts per call (S3_MAX_ATTEMPTS): two resets are absorbed, three are not.
      proxy.resetNext(2);
      const patient = storeFor({ endpoint: proxy.endpoint });
      expect((await patient.get(imageKey('jretry', 0)))?.toString()).toBe('retried');
      expect(proxy.connections).toBe(3);

      proxy.resetNext(3);
      const unlucky = storeFor({ endpoint: proxy.endpoint });
      await expect(unlucky.get(imageKey('jretry', 0))).rejects.toBeInstanceOf(ResultStoreUnavailableError);
      expect(proxy.connections).toBe(6);
    } finally {
      await proxy.close();
    }
  });

  it('says unavailable (not missing) while the server is down, and works again once it is back', { timeout: 60_000 }, async () => {
    const store = storeFor();
    await store.put(imageKey('jdown', 0), Buffer.from('survives'));
    await s3.kill();
    try {
      for (const call of [() => store.get(imageKey('jdown', 0)), () => store.stat(imageKey('jdown', 0)), () => store.put(imageKey('jdown', 1), Buffer.from('x')), () => store.deleteJob('jdown')]) {
        const error = await call().then(() => null, (e: unknown) => e);
        expect(error).toBeInstanceOf(ResultStoreUnavailableError);
        expect((error as Error).message).toMatch(/^S3 \w+ of s3:\/\/pixelflow-test\/results\/jdown\/.* failed: .*ECONNREFUSED/);
      }
    } finally {
      await s3.restart();
    }
    expect((await store.get(imageKey('jdown', 0)))?.toString()).toBe('survives');
  });
});

describe('S3ResultStore.verify (start-up check)', () => {
  const failure = async (store: S3ResultStore): Promise<string> => {
    const error = await store.verify().then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(ResultStoreConfigError);
    return (error as Error).message;
  };

  it('passes for a bucket that exists with accepted credentials', async () => {
    await storeFor().verify();
  });

  it('names the problem in one line: missing bucket, refused credentials, unreachable endpoint', async () => {
    expect(await failure(storeFor({ bucket: 'no-such-bucket' }))).toBe(`result store: S3_BUCKET: no bucket "no-such-bucket" at ${s3.endpoint} (create it, or fix S3_BUCKET)`);
    // s3rver checks the access key id (not the V4 signature): an unknown key is refused as S3 refuses a wrong secret.
    const refused = await failure(storeFor({ credentials: { accessKeyId: 'WRONG', secretAccessKey: 'WRONG' } }));
    expect(refused).toMatch(/^result store: S3 refused the credentials for bucket "pixelflow-test" at .* \(HTTP 403\): check AWS_ACCESS_KEY_ID/);
    const closed = await startFaultProxy(s3.port);
    const deadEndpoint = closed.endpoint;
    await closed.close();
    expect(await failure(storeFor({ endpoint: deadEndpoint }))).toMatch(new RegExp(`^result store: S3_ENDPOINT: ${deadEndpoint} is unreachable: .*ECONNREFUSED`));
    for (const message of [refused]) expect(message).not.toContain('\n');
  });

  it('gives up on a server that does not answer within its limit', { timeout: 30_000 }, async () => {
    s3.freeze();
    try {
      const started = Date.now();
      expect(await failure(storeFor({ startCheckMs: 1_500 }))).toBe(`result store: S3_ENDPOINT: ${s3.endpoint} did not answer within 1.5 s`);
      // Generous upper bound: the abort fires at 1.5 s; a loaded 2-core machine may be late by seconds.
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      s3.thaw();
    }
  });
});
