import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { Webhook } from 'standardwebhooks';
import { ApiKeys, keys as makeKeys } from '@pixelflow/queue';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../services/api/src/app.ts';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { startReceiver, type Receiver } from '../../packages/webhooks/test/support/receiver.ts';
import { postJob, startService, waitForStatus, type TestService } from './support.ts';

// Webhooks end to end: POST /jobs names one beside the parameters, the real worker runs the job
// on the tiny model, and the API process delivers the signed event to a real receiver on
// loopback (allowed here by WEBHOOK_ALLOW_PRIVATE=true; the refusals run with it false). Retries
// wait 100 to 300 ms here instead of seconds to an hour.

const secret = `whsec_${randomBytes(32).toString('base64')}`;
const fastRetries = { WEBHOOK_SECRET: secret, WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_BACKOFF_MS: '100', WEBHOOK_BACKOFF_MAX_MS: '300' };
const request = { class: 3, num_images: 1, seed: 7, steps: 1 };

interface Delivery {
  event: string;
  webhook_id: string;
  status: string;
  attempts: number;
  last_status_code: number | null;
}

let receiver: Receiver;
const stops: (() => Promise<void>)[] = [];

beforeAll(async () => {
  receiver = await startReceiver();
});

afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

afterAll(async () => {
  await receiver.close();
});

async function service(options: { worker: boolean; env: Record<string, string> }): Promise<TestService> {
  const started = await startService(options);
  stops.push(() => started.stop());
  return started;
}

async function deliveryOf(url: string, id: string, status: string, timeoutMs = 60_000): Promise<Delivery> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = (await (await fetch(`${url}/jobs/${id}`)).json()) as { webhook: { deliveries: Delivery[] } | null };
    const delivery = job.webhook?.deliveries[0];
    if (delivery?.status === status) return delivery;
    if (Date.now() > deadline) throw new Error(`delivery of ${id} is ${JSON.stringify(delivery)}, not ${status}, after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function receivedFor(id: string): Receiver['received'] {
  return receiver.received.filter((r) => r.body.includes(id));
}

describe('webhooks', () => {
  it('deliver job.succeeded with the job view, signed so that standardwebhooks verifies it; the parameters carry no URL', async () => {
    receiver.answer = 204;
    const api = await service({ worker: true, env: fastRetries });
    const created = await postJob(api.url, { ...request, webhook: { url: receiver.url } });
    expect(created.status).toBe(202);
    const { id, parameters, webhook } = (await created.json()) as { id: string; parameters: Record<string, unknown>; webhook: unknown };
    expect(parameters).not.toHaveProperty('webhook');
    expect(JSON.stringify(parameters)).not.toContain(receiver.url);
    expect(webhook).toEqual({ url: receiver.url, events: ['job.succeeded', 'job.failed', 'job.canceled'], deliveries: [] });

    const delivery = await deliveryOf(api.url, id, 'delivered');
    expect(delivery).toMatchObject({ event: 'job.succeeded', attempts: 1, last_status_code: 204 });
    const [got] = receivedFor(id);
    const payload = new Webhook(secret).verify(got!.body, got!.headers as Record<string, string>) as { type: string; data: Record<string, unknown> };
    expect(got!.headers['webhook-id']).toBe(delivery.webhook_id);
    const view = (await (await fetch(`${api.url}/jobs/${id}`)).json()) as Record<string, unknown>;
    // The view as it was when the event was queued: the same but for the delivery state since.
    expect(payload.type).toBe('job.succeeded');
    expect({ ...payload.data, webhook: null }).toEqual({ ...view, webhook: null });
    expect(payload.data['result']).toMatchObject({ images: [{ url: `/jobs/${id}/images/0` }] });
    // The PNG's metadata carries the parameters, and so nothing of the webhook.
    const png = Buffer.from(await (await fetch(`${api.url}/jobs/${id}/images/0`)).arrayBuffer());
    expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
    expect(png.includes('"seed":7')).toBe(true);
    expect(png.includes(receiver.url)).toBe(false);
    expect(png.includes('webhook')).toBe(false);
  });

  it('retry under one webhook-id while the receiver answers 503, and deliver once it answers 200', async () => {
    receiver.answer = 503;
    const api = await service({ worker: false, env: fastRetries });
    const { id } = (await (await postJob(api.url, { ...request, webhook: { url: receiver.url, events: ['job.canceled'] } })).json()) as { id: string };
    expect((await fetch(`${api.url}/jobs/${id}`, { method: 'DELETE' })).status).toBe(200);
    await expect.poll(() => receivedFor(id).length, { timeout: 60_000, interval: 50 }).toBeGreaterThanOrEqual(3);
    expect(await deliveryOf(api.url, id, 'pending')).toMatchObject({ event: 'job.canceled', last_status_code: 503 });
    receiver.answer = 200;
    const delivered = await deliveryOf(api.url, id, 'delivered');
    const received = receivedFor(id);
    expect(new Set(received.map((r) => r.headers['webhook-id']))).toEqual(new Set([delivered.webhook_id]));
    expect(delivered.attempts).toBe(received.length);
  });

  it('lose no delivery when the job ends while no API process runs: the next one delivers it', async () => {
    receiver.answer = 204;
    const api = await service({ worker: false, env: fastRetries });
    const { id } = (await (await postJob(api.url, { ...request, webhook: { url: receiver.url } })).json()) as { id: string };
    await api.app.close();
    // The worker ends the job with every API process down.
    await api.startWorker();
    await expect.poll(async () => api.redis.hget(`${api.prefix}:job:${id}`, 'status'), { timeout: 60_000, interval: 100 }).toBe('succeeded');
    expect(receivedFor(id)).toEqual([]);
    const restarted: FastifyInstance = await buildApp(loadApiConfig(api.env), { logger: false });
    stops.push(() => restarted.close());
    await restarted.listen({ host: '127.0.0.1', port: 0 });
    const address = restarted.server.address();
    const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    expect(await deliveryOf(url, id, 'delivered')).toMatchObject({ event: 'job.succeeded', attempts: 1 });
    expect(receivedFor(id)).toHaveLength(1);
    await waitForStatus(url, id, ['succeeded']);
  });

  it('refuse at submission, as 400 problems naming webhook.url, URLs a delivery must not reach', async () => {
    const api = await service({ worker: false, env: { WEBHOOK_SECRET: secret, WEBHOOK_ALLOW_PRIVATE: 'false' } });
    for (const [url, reason] of [
      [receiver.url, /127\.0\.0\.1/],
      [`http://localhost:${receiver.port}/hooks`, /localhost resolves to/],
      ['http://169.254.169.254/latest/meta-data/', /169\.254\.169\.254/],
      ['http://[::ffff:10.0.0.1]/', /internal/],
      ['http://[fd00:ec2::254]/', /fd00:ec2::254/],
      ['ftp://example.com/hooks', /http/],
      ['https://user:secret@example.com/hooks', /credentials/],
    ] as const) {
      const response = await postJob(api.url, { ...request, webhook: { url } });
      expect(response.status, url).toBe(400);
      expect(response.headers.get('content-type')).toMatch(/application\/problem\+json/);
      const problem = (await response.json()) as { type: string; errors: { path: string; message: string }[] };
      expect(problem.type).toBe('/problems/validation');
      expect(problem.errors).toEqual([{ path: 'webhook.url', message: expect.stringMatching(reason) }]);
    }
    const inside = await postJob(api.url, { ...request, webhook: { url: 'https://example.com/x', events: ['job.started'] } });
    expect(inside.status).toBe(400);
    const misplaced = await postJob(api.url, { ...request, webhook_url: 'https://example.com/x' });
    expect(misplaced.status).toBe(400);
  });

  it('sign with the secret of the API key that created the job when AUTH is on', async () => {
    receiver.answer = 204;
    const api = await service({ worker: false, env: { ...fastRetries, WEBHOOK_SECRET: '', AUTH: 'on' } });
    const store = new ApiKeys(api.redis, makeKeys(api.prefix));
    const owner = await store.create({ name: 'hook-owner', admin: false, ratePerMinute: null, maxActive: null });
    const other = await store.create({ name: 'hook-other', admin: false, ratePerMinute: null, maxActive: null });
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${owner.key}` };
    const created = await fetch(`${api.url}/jobs`, { method: 'POST', headers, body: JSON.stringify({ ...request, webhook: { url: receiver.url } }) });
    expect(created.status).toBe(202);
    const { id } = (await created.json()) as { id: string };
    expect((await fetch(`${api.url}/jobs/${id}`, { method: 'DELETE', headers: { authorization: headers.authorization } })).status).toBe(200);
    await expect.poll(() => receivedFor(id).length, { timeout: 60_000, interval: 50 }).toBe(1);
    const [got] = receivedFor(id);
    expect(new Webhook(owner.webhookSecret).verify(got!.body, got!.headers as Record<string, string>)).toMatchObject({ type: 'job.canceled', data: { id } });
    expect(() => new Webhook(other.webhookSecret).verify(got!.body, got!.headers as Record<string, string>)).toThrow();
    expect(() => new Webhook(secret).verify(got!.body, got!.headers as Record<string, string>)).toThrow();
  });

  it('refuse a webhook when no secret could sign it (AUTH off without WEBHOOK_SECRET)', async () => {
    const api = await service({ worker: false, env: { WEBHOOK_ALLOW_PRIVATE: 'true' } });
    const response = await postJob(api.url, { ...request, webhook: { url: receiver.url } });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { errors: unknown }).errors).toEqual([{ path: 'webhook', message: expect.stringMatching(/WEBHOOK_SECRET/) }]);
    expect((await postJob(api.url, request)).status).toBe(202);
  });
});
