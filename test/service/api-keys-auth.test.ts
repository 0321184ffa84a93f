import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeys, keys as makeKeys, type CreatedApiKey } from '@pixelflow/queue';
import { buildApp } from '../../services/api/src/app.ts';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { startService, type TestService } from './support.ts';

// AUTH=on against the real API on real Redis, over real HTTP: which routes need a key, the 401s
// (RFC 6750 challenges, problem+json), bad and huge headers, and log lines that never hold a key.

let service: TestService;
let store: ApiKeys;
let key: CreatedApiKey;

beforeAll(async () => {
  service = await startService({ env: { AUTH: 'on' } });
  store = new ApiKeys(service.redis, makeKeys(service.prefix));
  key = await store.create({ name: 'auth-test', admin: false, ratePerMinute: null, maxActive: null });
});
afterAll(async () => {
  await service.stop();
});

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function expect401(response: Response, challenge: string): Promise<Record<string, unknown>> {
  expect(response.status).toBe(401);
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(response.headers.get('www-authenticate')).toBe(challenge);
  const body = (await response.json()) as Record<string, unknown>;
  expect(body).toMatchObject({ type: '/problems/unauthorized', status: 401 });
  return body;
}
const MISSING = 'Bearer realm="pixelflow"';
const INVALID = 'Bearer realm="pixelflow", error="invalid_token"';

describe('AUTH=on', () => {
  it('leaves probes, metrics, the documentation, problem types and the web page open', async () => {
    for (const path of ['/healthz', '/metrics', '/openapi.json', '/docs', '/problems/unauthorized', '/']) {
      const response = await fetch(`${service.url}${path}`, { redirect: 'manual' });
      // The web page may be unbuilt here (503) and /docs may redirect; none of them asks for a key.
      expect(response.status, path).not.toBe(401);
      expect(response.status, path).toBeLessThan(500 + (path === '/' ? 4 : 0));
    }
    expect((await fetch(`${service.url}/readyz`)).status).not.toBe(401);
  });

  it('answers every job and model route without a key 401, before anything else about the request', async () => {
    const routes: [string, string][] = [
      ['POST', '/jobs'],
      ['GET', '/jobs/j0123456789abcdef01234567'],
      ['GET', '/jobs/not-an-id'],
      ['DELETE', '/jobs/j0123456789abcdef01234567'],
      ['GET', '/jobs/j0123456789abcdef01234567/events'],
      ['GET', '/jobs/j0123456789abcdef01234567/images/0'],
      ['GET', '/jobs/j0123456789abcdef01234567/previews/0'],
      ['GET', '/models'],
      ['GET', '/models/classes'],
      ['GET', '/no/such/route'],
    ];
    for (const [method, path] of routes) {
      const body = await expect401(await fetch(`${service.url}${path}`, { method, ...(method === 'POST' && { body: '{}', headers: { 'content-type': 'application/json' } }) }), MISSING);
      expect(body['instance']).toBe(path);
    }
  });

  it('tells a missing key, another scheme, a malformed and an unknown or revoked key apart in the challenge, and never echoes the key', async () => {
    await expect401(await fetch(`${service.url}/models`), MISSING);
    await expect401(await fetch(`${service.url}/models`, { headers: { authorization: 'Basic dXNlcjpwYXNz' } }), MISSING);
    for (const header of ['Bearer', 'Bearer ', 'Bearer a b', 'Bearer ä', 'bearer pfk_short', `Bearer ${key.key.slice(0, -1)}`, `Bearer ${'x'.repeat(10_000)}`]) {
      const body = await expect401(await fetch(`${service.url}/models`, { headers: { authorization: header } }), INVALID);
      expect(JSON.stringify(body)).not.toContain(header.slice(7) || 'no token');
    }
    const unknown = await store.create({ name: 'to-revoke', admin: false, ratePerMinute: null, maxActive: null });
    expect((await fetch(`${service.url}/models`, { headers: bearer(unknown.key) })).status).toBe(200);
    await store.revoke('to-revoke');
    const body = await expect401(await fetch(`${service.url}/models`, { headers: bearer(unknown.key) }), INVALID);
    expect(JSON.stringify(body)).not.toContain(unknown.key);
  });

  it('serves a valid key (the scheme in any case)', async () => {
    expect((await fetch(`${service.url}/models`, { headers: bearer(key.key) })).status).toBe(200);
    expect((await fetch(`${service.url}/models/classes`, { headers: { authorization: `bEaReR ${key.key}` } })).status).toBe(200);
    // Past authentication, the routes answer as ever.
    expect((await fetch(`${service.url}/jobs/j0123456789abcdef01234567`, { headers: bearer(key.key) })).status).toBe(404);
  });

  it('answers headers too large for the server 431 and control characters 400, never 5xx', async () => {
    const exchange = (request: string) =>
      new Promise<string>((resolve, reject) => {
        const { port } = new URL(service.url);
        const socket = connect(Number(port), '127.0.0.1', () => socket.write(request));
        let text = '';
        socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
        socket.on('close', () => resolve(text));
        socket.on('error', reject);
        socket.setTimeout(5000, () => socket.destroy());
      });
    const huge = await exchange(`GET /models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'a'.repeat(20_000)}\r\nConnection: close\r\n\r\n`);
    expect(huge).toMatch(/^HTTP\/1\.1 431 /);
    const control = await exchange(`GET /models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ab\x01cd\r\nConnection: close\r\n\r\n`);
    expect(control).toMatch(/^HTTP\/1\.1 400 /);
    const binary = await exchange(`GET /models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\xfd\r\nConnection: close\r\n\r\n`);
    expect(binary).toMatch(/^HTTP\/1\.1 4\d\d /);
  });
});

describe('log lines', () => {
  it('never carry a key: not on requests, refusals or errors, and pino redacts the header where a line holds the request headers', async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString().split('\n').filter((line) => line !== ''));
        done();
      },
    });
    const app = await buildApp(loadApiConfig({ ...service.env, LOG_LEVEL: 'trace' }), { logger: { level: 'trace', stream } });
    try {
      app.get('/jobs-log-probe', async (request) => {
        // (Fastify's req serializer keeps no headers: a line has them only when it logs them itself.)
        request.log.info({ headers: request.headers }, 'a line that logs the headers');
        throw new Error('fails on purpose');
      });
      const other = await store.create({ name: 'logged', admin: false, ratePerMinute: null, maxActive: null });
      await app.inject({ method: 'GET', url: '/models', headers: bearer(other.key) });
      await app.inject({ method: 'POST', url: '/jobs', headers: { ...bearer(other.key), 'content-type': 'application/json' }, payload: JSON.stringify({ class: 'x' }) });
      await app.inject({ method: 'GET', url: '/jobs-log-probe', headers: bearer(other.key) });
      const wrong = `pfk_${'A'.repeat(43)}`;
      await app.inject({ method: 'GET', url: '/models', headers: bearer(wrong) });
      expect(lines.length).toBeGreaterThan(5);
      const all = lines.join('\n');
      for (const secret of [other.key, other.key.slice(4), wrong, other.webhookSecret]) expect(all).not.toContain(secret);
      const withHeaders = lines.map((line) => JSON.parse(line) as { msg?: string; headers?: Record<string, string> }).find((line) => line.msg === 'a line that logs the headers');
      expect(withHeaders?.headers?.['authorization']).toBe('[redacted]');
    } finally {
      await app.close();
    }
  });
});
