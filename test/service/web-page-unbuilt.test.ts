import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../services/api/src/app.ts';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { REDIS_URL, TINY } from './support.ts';

// A page that was never built: the 503 tells the caller what to do without naming the server's
// folders; the folder is for the operator, in the log.

let dir: string;
let app: FastifyInstance;
let url: string;
const logLines: { level: number; msg: string }[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pixelflow-unbuilt-'));
  const webDir = join(dir, 'never-built');
  const config = loadApiConfig({ REDIS_URL, REDIS_PREFIX: `pftest-${randomBytes(4).toString('hex')}`, MODEL_DIR: TINY, RESULTS_DIR: dir, WEB_DIR: webDir });
  const stream = { write: (line: string) => void logLines.push(JSON.parse(line) as (typeof logLines)[number]) };
  app = await buildApp(config, { logger: { level: 'warn', stream } });
  url = await app.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await app?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('GET / when the page was never built', () => {
  it('says what to do in a 503 that names no server path, and logs the folder once', async () => {
    const response = await fetch(`${url}/`);
    expect(response.status).toBe(503);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const body = (await response.json()) as { type: string; detail: string };
    expect(body.type).toBe('/problems/service-unavailable');
    expect(body.detail).toBe('the web page is not built; run `pnpm build:web` and restart the API (pnpm start does both)');
    expect(JSON.stringify(body)).not.toContain(dir);
    await fetch(`${url}/`);
    const warnings = logLines.filter((line) => line.msg.includes(join(dir, 'never-built')));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.msg).toContain('pnpm build:web');
  });
});
