import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { connectRedis, JobRecords, keys as makeKeys, type JobRecord, type Keys } from '@pixelflow/queue';
import type { ResolvedGeneration, WebhookEvent } from '@pixelflow/schemas';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebhookDeliveries, webhookIdOf, type WebhookSettings } from '../src/delivery.ts';
import { startReceiver } from './support/receiver.ts';

// Deliveries through the real Redis (a prefix per test), BullMQ and a real HTTP receiver on
// loopback, with the job endings written by the same JobRecords calls the worker and the API
// make. Retries wait 100 to 400 ms here instead of seconds to hours.

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const parameters: ResolvedGeneration = { class_label: 3, class_name: 'digit 3', num_images: 1, seed: 1, cfg_scale: 4, noise_shift: 1, steps: [2], solver: 'euler' };
const secret = `whsec_${randomBytes(32).toString('base64')}`;
const settings: WebhookSettings = { allowPrivate: true, timeoutMs: 5000, attempts: 50, backoffMs: 100, backoffMaxMs: 400, pollMs: 100, concurrency: 4 };
const image = { url: '/jobs/x/images/0', width: 8, height: 8, sha256: '0'.repeat(64) };

let redis: Redis;
let bull: Redis;
const prefixes: string[] = [];
const cleanups: (() => Promise<void>)[] = [];

beforeAll(() => {
  redis = connectRedis(REDIS_URL, 'client', 'webhook-delivery-test');
  bull = connectRedis(REDIS_URL, 'worker', 'webhook-delivery-test-bull');
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(async () => {
  for (const prefix of prefixes) {
    const stale = await redis.keys(`${prefix}:*`);
    if (stale.length > 0) await redis.del(...stale);
  }
  redis.disconnect();
  bull.disconnect();
});

function fresh(): { keys: Keys; records: JobRecords } {
  const keys = makeKeys(`pftest-wh-${randomBytes(4).toString('hex')}`);
  prefixes.push(keys.prefix);
  return { keys, records: new JobRecords(redis, keys) };
}

function deliveries(keys: Keys, records: JobRecords, overrides: Partial<WebhookSettings> = {}, secretFor = async (): Promise<string | null> => secret): WebhookDeliveries {
  const log = { info: () => undefined, warn: () => undefined, error: () => undefined };
  const viewOf = (record: JobRecord): unknown => ({ id: record.id, status: record.status, result: record.images === null ? null : { images: record.images } });
  const started = new WebhookDeliveries({ connection: bull, keys, records, settings: { ...settings, ...overrides }, secretFor, viewOf, log });
  cleanups.push(() => started.close());
  return started;
}

async function newJob(records: JobRecords, url: string, events?: WebhookEvent[]): Promise<string> {
  const id = `j${randomBytes(12).toString('hex')}`;
  await records.create({ id, model: 'tiny', parameters, createdAt: new Date(), webhook: { url, events: events ?? ['job.succeeded', 'job.failed', 'job.canceled'] } });
  return id;
}

async function until<T>(what: string, probe: () => Promise<T | undefined | null | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('webhook deliveries', () => {
  it('deliver job.succeeded, signed so that standardwebhooks verifies it, and show it delivered on the job', async () => {
    const { keys, records } = fresh();
    const receiver = await startReceiver();
    cleanups.push(() => receiver.close());
    const id = await newJob(records, receiver.url);
    await records.start(id, new Date());
    expect(await records.finish(id, { status: 'succeeded', images: [image] }, new Date(), 3600)).toBe('succeeded');
    deliveries(keys, records).start();

    const [got] = await until('the delivery', async () => receiver.received.length > 0 && receiver.received);
    const payload = new Webhook(secret).verify(got!.body, got!.headers as Record<string, string>) as { type: string; data: { id: string; status: string } };
    expect(payload).toMatchObject({ type: 'job.succeeded', data: { id, status: 'succeeded', result: { images: [image] } } });
    expect(got!.headers['webhook-id']).toBe(webhookIdOf(id, 'job.succeeded'));
    const record = await until('the delivered state', async () => {
      const r = await records.get(id);
      return r?.webhookDeliveries[0]?.status === 'delivered' && r;
    });
    expect(record.webhookDeliveries).toEqual([
      { event: 'job.succeeded', webhook_id: webhookIdOf(id, 'job.succeeded'), status: 'delivered', attempts: 1, last_status_code: 204, last_error: null, delivered_at: expect.any(String) },
    ]);
    expect(await records.webhookOutbox()).toEqual([]);
  });

  it('retry under the same webhook-id and body while the receiver fails, then deliver', async () => {
    const { keys, records } = fresh();
    const receiver = await startReceiver();
    cleanups.push(() => receiver.close());
    receiver.answer = 503;
    const id = await newJob(records, receiver.url);
    await records.start(id, new Date());
    await records.finish(id, { status: 'failed', error: { type: 'sampling_failed', message: 'boom' } }, new Date(), 3600);
    deliveries(keys, records).start();

    await until('three failed attempts', async () => receiver.received.length >= 3);
    const failing = await records.get(id);
    expect(failing?.webhookDeliveries[0]).toMatchObject({ event: 'job.failed', status: 'pending', last_status_code: 503, last_error: 'HTTP 503' });
    receiver.answer = 200;
    await until('the delivered state', async () => (await records.get(id))?.webhookDeliveries[0]?.status === 'delivered');
    const ids = new Set(receiver.received.map((r) => r.headers['webhook-id']));
    const bodies = new Set(receiver.received.map((r) => r.body));
    expect([...ids]).toEqual([webhookIdOf(id, 'job.failed')]);
    expect(bodies.size).toBe(1);
    // Every attempt, the failed ones too, is signed right.
    for (const r of receiver.received) expect(() => new Webhook(secret).verify(r.body, r.headers as Record<string, string>)).not.toThrow();
    expect((await records.get(id))?.webhookDeliveries[0]?.attempts).toBe(receiver.received.length);
  });

  it('retry while nothing listens, and deliver once the receiver is up again on its port', async () => {
    const { keys, records } = fresh();
    const first = await startReceiver();
    const port = first.port;
    await first.close();
    const id = await newJob(records, `http://127.0.0.1:${port}/hooks`);
    expect(await records.requestCancel(id, new Date(), 3600)).toBe('queued');
    deliveries(keys, records).start();

    await until('two refused attempts', async () => ((await records.get(id))?.webhookDeliveries[0]?.attempts ?? 0) >= 2);
    expect((await records.get(id))?.webhookDeliveries[0]).toMatchObject({ event: 'job.canceled', status: 'pending', last_status_code: null, last_error: expect.stringMatching(/ECONNREFUSED/) });
    const receiver = await startReceiver(port);
    cleanups.push(() => receiver.close());
    await until('the delivered state', async () => (await records.get(id))?.webhookDeliveries[0]?.status === 'delivered');
    expect(receiver.received.map((r) => r.headers['webhook-id'])).toEqual([webhookIdOf(id, 'job.canceled')]);
    expect(JSON.parse(receiver.received[0]!.body)).toMatchObject({ type: 'job.canceled', data: { id, status: 'canceled' } });
  });

  it('lose no delivery when no process delivers at the ending: the outbox keeps it for the next one', async () => {
    const { keys, records } = fresh();
    const receiver = await startReceiver();
    cleanups.push(() => receiver.close());
    const id = await newJob(records, receiver.url);
    await records.start(id, new Date());
    await records.finish(id, { status: 'succeeded', images: [image] }, new Date(), 3600);
    // Ended while every API process was down (or died before handing it over).
    expect(await records.webhookOutbox()).toEqual([id]);
    expect((await records.get(id))?.webhookDeliveries).toEqual([]);
    deliveries(keys, records).start();
    await until('the delivered state', async () => (await records.get(id))?.webhookDeliveries[0]?.status === 'delivered');
    expect(receiver.received).toHaveLength(1);
  });

  it('hand an event over once however many processes read the outbox at once', async () => {
    const { keys, records } = fresh();
    const receiver = await startReceiver();
    cleanups.push(() => receiver.close());
    const id = await newJob(records, receiver.url);
    await records.start(id, new Date());
    await records.finish(id, { status: 'succeeded', images: [image] }, new Date(), 3600);
    const replicas = [deliveries(keys, records), deliveries(keys, records), deliveries(keys, records)];
    for (const replica of replicas) replica.start();
    await until('the delivered state', async () => (await records.get(id))?.webhookDeliveries[0]?.status === 'delivered');
    // A second delivery would come within a poll or two; wait well past them.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(receiver.received).toHaveLength(1);
  });

  it('deliver nothing for an event the webhook did not ask for', async () => {
    const { keys, records } = fresh();
    const receiver = await startReceiver();
    cleanups.push(() => receiver.close());
    const id = await newJob(records, receiver.url, ['job.failed']);
    await records.start(id, new Date());
    await records.finish(id, { status: 'succeeded', images: [image] }, new Date(), 3600);
    deliveries(keys, records).start();
    await until('the outbox to empty', async () => (await records.webhookOutbox()).length === 0);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(receiver.received).toEqual([]);
    expect((await records.get(id))?.webhookDeliveries).toEqual([]);
  });

  it('count a receiver that never answers, and a redirect (not followed), as failed attempts', async () => {
    const { keys, records } = fresh();
    const hanging = await startReceiver();
    cleanups.push(() => hanging.close());
    hanging.answer = 'hang';
    const redirecting = await startReceiver();
    cleanups.push(() => redirecting.close());
    redirecting.answer = 307;
    const slow = await newJob(records, hanging.url);
    const moved = await newJob(records, redirecting.url);
    for (const id of [slow, moved]) await records.requestCancel(id, new Date(), 3600);
    deliveries(keys, records, { timeoutMs: 300, attempts: 2 }).start();
    const failed = async (id: string): Promise<unknown> =>
      until(`${id} failed`, async () => {
        const d = (await records.get(id))?.webhookDeliveries[0];
        return d?.status === 'failed' && d;
      });
    expect(await failed(slow)).toMatchObject({ attempts: 2, last_status_code: null, last_error: 'no answer within 300 ms' });
    expect(await failed(moved)).toMatchObject({ attempts: 2, last_status_code: 307, last_error: 'HTTP 307: redirects are not followed' });
    expect(hanging.received).toHaveLength(2);
    // Only the redirecting receiver's own path was asked, never where it pointed.
    expect(redirecting.received.map((r) => r.path)).toEqual(['/hooks', '/hooks']);
  });

  it('mark a delivery failed after its last attempt: refused addresses at delivery, and no secret, count as failed attempts', async () => {
    const { keys, records } = fresh();
    const receiver = await startReceiver();
    cleanups.push(() => receiver.close());
    const id = await newJob(records, `http://localhost:${receiver.port}/hooks`);
    await records.start(id, new Date());
    await records.finish(id, { status: 'succeeded', images: [image] }, new Date(), 3600);
    deliveries(keys, records, { allowPrivate: false, attempts: 3 }).start();
    const delivery = await until('the failed state', async () => {
      const d = (await records.get(id))?.webhookDeliveries[0];
      return d?.status === 'failed' && d;
    });
    expect(delivery).toMatchObject({ attempts: 3, last_status_code: null, last_error: expect.stringMatching(/localhost resolves to/) });
    expect(receiver.received).toEqual([]);

    const other = fresh();
    const unsigned = await newJob(other.records, receiver.url);
    await other.records.requestCancel(unsigned, new Date(), 3600);
    deliveries(other.keys, other.records, { attempts: 2 }, async () => null).start();
    const refused = await until('the failed state', async () => {
      const d = (await other.records.get(unsigned))?.webhookDeliveries[0];
      return d?.status === 'failed' && d;
    });
    expect(refused).toMatchObject({ attempts: 2, last_error: 'no webhook secret is configured for the job owner' });
    expect(receiver.received).toEqual([]);
  });
});
