import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { REPO } from '../scripts/compiled.mjs';

// docker-compose.yml and the images as an operator runs them (no Docker engine here): Compose
// itself accepts the file, every long-running service has a health check that runs in its image,
// the worker's metrics stay on the Compose network, and neither image runs as root.

interface Service {
  ports?: string[];
  expose?: string[];
  healthcheck?: { test: string[] };
}
const compose = parse(readFileSync(join(REPO, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Service> };
const dockerfile = readFileSync(join(REPO, 'deploy', 'Dockerfile'), 'utf8');

/** The Dockerfile's stage named `name`, up to the next FROM. */
function stage(name: string): string {
  const start = dockerfile.search(new RegExp(`^FROM \\S+ AS ${name}$`, 'm'));
  expect(start, `stage ${name}`).toBeGreaterThanOrEqual(0);
  const next = dockerfile.slice(start + 1).search(/^FROM /m);
  return next === -1 ? dockerfile.slice(start) : dockerfile.slice(start, start + 1 + next);
}

describe('docker-compose.yml', () => {
  it('is accepted by docker-compose config', async () => {
    const result = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile('docker-compose', ['config', '-q'], { cwd: REPO }, (error, _stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stderr }));
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });

  it('gives the API and the worker health checks that the images can run (node, no curl)', () => {
    for (const name of ['api', 'worker']) {
      const test = compose.services[name]?.healthcheck?.test ?? [];
      expect(test.slice(0, 3), name).toEqual(['CMD', 'node', '-e']);
      expect(() => new Script(test[3] as string), name).not.toThrow();
    }
    expect(compose.services['api']?.healthcheck?.test[3]).toContain('http://127.0.0.1:8080/healthz');
    expect(compose.services['worker']?.healthcheck?.test[3]).toContain('http://127.0.0.1:9464/metrics');
  });

  it('keeps the worker metrics port off the host, so that --scale worker=N does not collide', () => {
    expect(compose.services['worker']?.ports).toBeUndefined();
    expect(compose.services['worker']?.expose).toEqual(['9464']);
  });
});

describe('deploy/Dockerfile', () => {
  it('runs both images as uid 1000, which owns the results folder, on a supported Node LTS', () => {
    for (const name of ['api', 'worker']) {
      const text = stage(name);
      expect(text, name).toMatch(/^USER (node|1000:1000)$/m);
      expect(text, name).toContain('chown 1000:1000 /data/results');
    }
    expect(dockerfile).toMatch(/^FROM node:24-bookworm-slim AS base$/m);
    expect(dockerfile).not.toMatch(/node:(1\d|2[0-3])-/);
  });
});
