import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildWeb } from '@pixelflow/web/build';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type TestService } from './support.ts';

// How the API serves the built page: the document revalidated, hashed assets cached for good,
// a strict CSP, nothing else from the build folder, and a clear 503 when the page was never built.

let dir: string;
let built: TestService;
let unbuilt: TestService;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pixelflow-web-route-'));
  await buildWeb(join(dir, 'web'));
  built = await startService({ env: { WEB_DIR: join(dir, 'web') } });
  unbuilt = await startService({ env: { WEB_DIR: join(dir, 'never-built') } });
});

afterAll(async () => {
  await built?.stop();
  await unbuilt?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('GET / and /assets/*', () => {
  it('serves the page with a strict CSP and revalidation, and its hashed assets as immutable', async () => {
    const page = await fetch(`${built.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('cache-control')).toBe('no-cache');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await page.text();
    const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1] as string);
    expect(assets).toHaveLength(2);
    expect(assets.some((a) => /^\/assets\/app-[A-Z0-9]+\.js$/.test(a))).toBe(true);
    expect(assets.some((a) => /^\/assets\/style-[A-Z0-9]+\.css$/.test(a))).toBe(true);
    for (const asset of assets) {
      const response = await fetch(`${built.url}${asset}`);
      expect(response.status).toBe(200);
      expect(response.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect(response.headers.get('content-type')).toMatch(asset.endsWith('.js') ? /^text\/javascript/ : /^text\/css/);
      expect((await response.arrayBuffer()).byteLength).toBeGreaterThan(1000);
    }
    const etag = page.headers.get('etag') as string;
    // If-None-Match as RFC 9110 has it: the validator itself, weak, or in a list.
    for (const ifNoneMatch of [etag, `W/${etag}`, `"other", ${etag}`]) {
      expect((await fetch(`${built.url}/`, { headers: { 'if-none-match': ifNoneMatch } })).status, ifNoneMatch).toBe(304);
    }
    expect((await fetch(`${built.url}/`, { headers: { 'if-none-match': '"other"' } })).status).toBe(200);
  });

  it('serves nothing else from the build folder, and keeps the page out of the OpenAPI document', async () => {
    for (const path of ['/assets/index.html', '/assets/page.json', '/assets/..%2Fpage.json', '/assets/missing.js']) {
      const response = await fetch(`${built.url}${path}`);
      expect(response.status, path).toBe(404);
      expect(response.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
    }
    const paths = Object.keys(((await (await fetch(`${built.url}/openapi.json`)).json()) as { paths: Record<string, unknown> }).paths);
    expect(paths).not.toContain('/');
    expect(paths.some((p) => p.startsWith('/assets'))).toBe(false);
    expect(paths).toContain('/jobs');
  });

  it('answers 503 with the command that builds the page when it was never built, and the API works on', async () => {
    const response = await fetch(`${unbuilt.url}/`);
    expect(response.status).toBe(503);
    const body = (await response.json()) as { type: string; detail: string };
    expect(body.type).toBe('/problems/service-unavailable');
    expect(body.detail).toContain('pnpm build:web');
    expect((await fetch(`${unbuilt.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${unbuilt.url}/models/classes`)).status).toBe(200);
  });
});
