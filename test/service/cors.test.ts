import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { postJob, startService, type TestService } from './support.ts';

// Cross-origin calls from browsers: off by default; with CORS_ORIGINS, preflights are answered for
// the configured origins only, and every response, the event stream included, carries the headers.

const ORIGIN = 'https://app.example.com';

async function preflight(url: string, origin: string): Promise<Response> {
  return fetch(`${url}/jobs`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } });
}

describe('CORS off (the default)', () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startService();
  });
  afterAll(async () => {
    await service.stop();
  });

  it('answers no preflight and sends no Access-Control headers', async () => {
    const response = await preflight(service.url, ORIGIN);
    expect(response.status).toBe(404);
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
    const created = await postJob(service.url, { class: 1, num_images: 1, steps: 1 });
    expect(created.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('CORS_ORIGINS set', () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startService({ env: { CORS_ORIGINS: `${ORIGIN}, http://localhost:3000` } });
  });
  afterAll(async () => {
    await service.stop();
  });

  it('answers a preflight from a configured origin, with the methods and headers a client needs', async () => {
    const response = await preflight(service.url, ORIGIN);
    expect(response.status).toBe(204);
    expect(response.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    expect(response.headers.get('access-control-allow-methods')).toContain('POST');
    expect(response.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('content-type');
    expect(response.headers.get('access-control-max-age')).toBe('600');
  });

  it('does not allow an origin it was not given', async () => {
    const response = await preflight(service.url, 'https://elsewhere.example');
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('lets the page read Location and X-Request-Id, and puts the headers on the event stream too', async () => {
    const created = await fetch(`${service.url}/jobs`, { method: 'POST', headers: { origin: ORIGIN, 'content-type': 'application/json' }, body: JSON.stringify({ class: 1, num_images: 1, steps: 1 }) });
    expect(created.status).toBe(202);
    expect(created.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    expect(created.headers.get('access-control-expose-headers')?.split(/,\s*/)).toEqual(expect.arrayContaining(['Location', 'X-Request-Id', 'Retry-After', 'ETag']));
    const { id } = (await created.json()) as { id: string };
    const controller = new AbortController();
    const stream = await fetch(`${service.url}/jobs/${id}/events`, { headers: { origin: ORIGIN }, signal: controller.signal });
    expect(stream.headers.get('content-type')).toContain('text/event-stream');
    expect(stream.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    expect(stream.headers.get('x-request-id')).toEqual(expect.any(String));
    controller.abort();
  });
});

describe('CORS_ORIGINS', () => {
  it('is refused, naming the variable, when it is not * or a list of origins', () => {
    expect(() => loadApiConfig({ CORS_ORIGINS: 'https://app.example.com/path' })).toThrow(/CORS_ORIGINS must be \* or a comma-separated list of origins/);
    expect(() => loadApiConfig({ CORS_ORIGINS: 'app.example.com' })).toThrow(/CORS_ORIGINS/);
    expect(loadApiConfig({ CORS_ORIGINS: '*' }).CORS_ORIGINS).toEqual(['*']);
    expect(loadApiConfig({}).CORS_ORIGINS).toEqual([]);
  });
});
