import { createHash } from 'node:crypto';
import { DeleteObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobRecords, keys } from '@pixelflow/queue';
import { openResultStore } from '@pixelflow/results';
import { loadWorkerConfig } from '../../services/worker/src/config.ts';
import { ExpirySweeper } from '../../services/worker/src/expiry-sweeper.ts';
import { startS3Server, type S3Server } from '../../packages/results/test/support/s3-server.ts';
import { postJob, startService, waitForStatus, type TestService } from './support.ts';

// The service with its results in S3: the real API and worker on the real Redis, an S3-protocol
// server (s3rver) in a process of its own. What a client sees in both serving modes, with objects
// missing, with the store down between requests, and with it going down in the middle of a job.

let s3: S3Server;
let streaming: TestService;
let client: S3Client;

beforeAll(async () => {
  s3 = await startS3Server({ prefix: 'deploy-a/' });
  streaming = await startService({ worker: true, env: s3.env });
  client = new S3Client({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: s3.env['AWS_ACCESS_KEY_ID']!, secretAccessKey: s3.env['AWS_SECRET_ACCESS_KEY']! },
  });
}, 60_000);
afterAll(async () => {
  client?.destroy();
  await streaming?.stop();
  await s3?.stop();
});

interface JobView {
  id: string;
  status: string;
  result: { images: { url: string; sha256: string }[] } | null;
  previews: { stage: number; url: string }[];
  error: { type: string; message: string } | null;
}

async function succeededJob(service: TestService, body: Record<string, unknown> = { class: 3, num_images: 2, steps: 1 }): Promise<JobView> {
  const id = ((await (await postJob(service.url, body)).json()) as { id: string }).id;
  return (await waitForStatus(service.url, id, ['succeeded'], 60_000)) as unknown as JobView;
}

async function objectKeys(prefix: string): Promise<string[]> {
  const page = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }));
  return (page.Contents ?? []).map((object) => object.Key!).sort();
}

const sha256 = (bytes: ArrayBuffer): string => createHash('sha256').update(Buffer.from(bytes)).digest('hex');

describe('results in S3, streamed through the API (RESULTS_REDIRECT=stream)', () => {
  it('stores a job’s files under S3_PREFIX by key and serves them with their ETag, 304 on revalidation', { timeout: 90_000 }, async () => {
    const job = await succeededJob(streaming);
    expect(await objectKeys(`deploy-a/${job.id}/`)).toEqual([0, 1].map((i) => `deploy-a/${job.id}/image-${i}.png`).concat([0, 1, 2, 3].map((s) => `deploy-a/${job.id}/stage-${s}.png`)).sort());
    // The record names API paths and hashes: no bucket, endpoint or signed URL.
    expect(JSON.stringify(job)).not.toContain(s3.endpoint);
    expect(JSON.stringify(job)).not.toContain(s3.bucket);

    for (const [index, image] of job.result!.images.entries()) {
      const response = await fetch(`${streaming.url}${image.url}`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('image/png');
      expect(response.headers.get('etag')).toBe(`"${image.sha256}"`);
      const bytes = await response.arrayBuffer();
      expect(Number(response.headers.get('content-length'))).toBe(bytes.byteLength);
      expect(sha256(bytes), `image ${index}`).toBe(image.sha256);
      const again = await fetch(`${streaming.url}${image.url}`, { headers: { 'if-none-match': `"${image.sha256}"` } });
      expect(again.status).toBe(304);
    }
    const preview = await fetch(`${streaming.url}${job.previews[3]!.url}`);
    const previewEtag = preview.headers.get('etag')!;
    expect(preview.status).toBe(200);
    expect(previewEtag).toMatch(/^"[0-9a-f]{32}"$/); // S3's: the MD5 of the object
    expect(previewEtag).toBe(`"${createHash('md5').update(Buffer.from(await preview.arrayBuffer())).digest('hex')}"`);
    const unchanged = await fetch(`${streaming.url}${job.previews[3]!.url}`, { headers: { 'if-none-match': previewEtag } });
    expect(unchanged.status).toBe(304);
    expect(unchanged.headers.get('etag')).toBe(previewEtag);
  });

  it('answers a 404 problem for a file missing from the bucket (deleted behind the record’s back)', { timeout: 60_000 }, async () => {
    const job = await succeededJob(streaming, { class: 1, num_images: 1, steps: 1 });
    await client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: `deploy-a/${job.id}/image-0.png` }));
    await client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: `deploy-a/${job.id}/stage-0.png` }));
    for (const path of [job.result!.images[0]!.url, job.previews[0]!.url]) {
      const response = await fetch(`${streaming.url}${path}`);
      expect(response.status, path).toBe(404);
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(await response.json()).toMatchObject({ type: '/problems/not-found', status: 404, instance: path });
    }
  });

  it('answers 503 with Retry-After while S3 is down, keeps the job, and serves it again once S3 is back', { timeout: 90_000 }, async () => {
    const job = await succeededJob(streaming, { class: 2, num_images: 1, steps: 1 });
    await s3.kill();
    try {
      for (const path of [job.result!.images[0]!.url, job.previews[1]!.url]) {
        const response = await fetch(`${streaming.url}${path}`);
        expect(response.status, path).toBe(503);
        expect(response.headers.get('retry-after')).toBe('5');
        expect(await response.json()).toMatchObject({ type: '/problems/service-unavailable', detail: 'the result store is unreachable; retry shortly', instance: path });
      }
      // The job is untouched: its record answers, and an image the client has cached revalidates without S3.
      expect(((await (await fetch(`${streaming.url}/jobs/${job.id}`)).json()) as JobView).status).toBe('succeeded');
      expect((await fetch(`${streaming.url}${job.result!.images[0]!.url}`, { headers: { 'if-none-match': `"${job.result!.images[0]!.sha256}"` } })).status).toBe(304);
    } finally {
      await s3.restart();
    }
    const back = await fetch(`${streaming.url}${job.result!.images[0]!.url}`);
    expect(back.status).toBe(200);
    expect(sha256(await back.arrayBuffer())).toBe(job.result!.images[0]!.sha256);
  });

  it('fails a job whose files cannot be stored because S3 went down while it ran, saying so, never succeeded without images', { timeout: 120_000 }, async () => {
    // Long enough (8 images x 100 steps a stage) that S3 is killed while it runs, after its first preview.
    const id = ((await (await postJob(streaming.url, { class: 6, num_images: 8, steps: 100 })).json()) as { id: string }).id;
    await expect
      .poll(async () => ((await (await fetch(`${streaming.url}/jobs/${id}`)).json()) as JobView).previews.length, { timeout: 60_000, interval: 50 })
      .toBeGreaterThan(0);
    await s3.kill();
    let job: JobView;
    try {
      job = (await waitForStatus(streaming.url, id, ['succeeded', 'failed', 'canceled'], 90_000)) as unknown as JobView;
    } finally {
      await s3.restart();
    }
    expect(job.status).toBe('failed');
    expect(job.result).toBeNull();
    expect(job.error?.type).toBe('worker_error');
    expect(job.error?.message).toMatch(new RegExp(`S3 PutObject of s3://${s3.bucket}/deploy-a/${id}/(stage-\\d|image-\\d)\\.png failed: .*ECONNREFUSED`));
    // The worker carries on with the next job once S3 is back.
    await succeededJob(streaming, { class: 0, num_images: 1, steps: 1 });
  });
});

describe('results in S3, served by presigned redirects (RESULTS_REDIRECT=presigned)', () => {
  it('redirects to a URL that a real HTTP client follows to the PNG; 304 and 404 stay the API’s', { timeout: 90_000 }, async () => {
    const presigning = await startService({ worker: false, env: { ...s3.env, REDIS_PREFIX: streaming.prefix, RESULTS_REDIRECT: 'presigned', RESULTS_PRESIGN_SECONDS: '60' } });
    try {
      const job = await succeededJob(streaming, { class: 9, num_images: 1, steps: 1 });
      const image = job.result!.images[0]!;
      const redirect = await fetch(`${presigning.url}${image.url}`, { redirect: 'manual' });
      expect(redirect.status).toBe(307);
      expect(redirect.headers.get('cache-control')).toBe('no-store');
      const location = new URL(redirect.headers.get('location')!);
      expect(`${location.origin}${location.pathname}`).toBe(`${s3.endpoint}/${s3.bucket}/deploy-a/${job.id}/image-0.png`);
      expect(location.searchParams.get('X-Amz-Expires')).toBe('60');

      // fetch follows the redirect: the bytes come from S3, not through the API.
      const followed = await fetch(`${presigning.url}${image.url}`);
      expect(followed.status).toBe(200);
      expect(followed.url.startsWith(s3.endpoint)).toBe(true);
      expect(sha256(await followed.arrayBuffer())).toBe(image.sha256);
      const preview = await fetch(`${presigning.url}${job.previews[2]!.url}`);
      expect(preview.status).toBe(200);
      expect(preview.headers.get('content-type')).toBe('image/png');
      await preview.arrayBuffer();

      expect((await fetch(`${presigning.url}${image.url}`, { headers: { 'if-none-match': `"${image.sha256}"` }, redirect: 'manual' })).status).toBe(304);
      await client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: `deploy-a/${job.id}/image-0.png` }));
      const gone = await fetch(`${presigning.url}${image.url}`, { redirect: 'manual' });
      expect(gone.status).toBe(404);
      expect(await gone.json()).toMatchObject({ type: '/problems/not-found' });
    } finally {
      await presigning.app.close();
    }
  });
});

describe('retention with results in S3', () => {
  it('the expiry sweep deletes an expired job’s objects, then its record; with S3 down it keeps the record to try again', { timeout: 90_000 }, async () => {
    const job = await succeededJob(streaming, { class: 4, num_images: 2, steps: 1 });
    const store = await openResultStore(loadWorkerConfig(streaming.env));
    const records = new JobRecords(streaming.redis, keys(streaming.prefix));
    const sweeper = new ExpirySweeper({ redis: streaming.redis, keys: keys(streaming.prefix), workerId: 'sweep-test', records, store, log: pino({ level: 'silent' }), lockMs: 5_000 });
    // Past every job's retention (JOB_RETENTION_SECONDS is at most a year).
    const later = new Date(Date.now() + 2 * 365 * 24 * 3600 * 1000);
    try {
      expect((await objectKeys(`deploy-a/${job.id}/`)).length).toBe(6);
      await s3.kill();
      try {
        await sweeper.sweep(async () => true, later);
        expect(await records.get(job.id)).not.toBeNull();
      } finally {
        await s3.restart();
      }
      expect((await objectKeys(`deploy-a/${job.id}/`)).length).toBe(6);

      await sweeper.sweep(async () => true, later);
      expect(await objectKeys(`deploy-a/${job.id}/`)).toEqual([]);
      expect(await records.get(job.id)).toBeNull();
      expect((await fetch(`${streaming.url}/jobs/${job.id}`)).status).toBe(404);
    } finally {
      store.close();
    }
  });
});
