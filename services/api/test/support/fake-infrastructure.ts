import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { JobEventNotifier } from '@pixelflow/queue';
import type { OpenedObject, ResultStore, StoredObject } from '@pixelflow/results';
import { buildApp } from '../../src/app.ts';
import { loadApiConfig } from '../../src/config.ts';
import type { ApiInfrastructure } from '../../src/infrastructure.ts';
import { InMemoryJobService } from './in-memory-jobs.ts';

// The API's infrastructure in memory, and the app built on it: route tests run
// with inject(), no Redis, no disk but the committed tiny model's manifest.

export const TINY_MODEL_DIR = fileURLToPath(new URL('../../../../test/fixtures/tiny', import.meta.url));

/** Wakes followers when the in-memory service appends an event, as the Redis hub does on its channel. */
export class InMemoryEventHub implements JobEventNotifier {
  private readonly listeners = new Map<string, Set<() => void>>();

  follow(jobId: string, listener: () => void): () => void {
    const set = this.listeners.get(jobId) ?? new Set();
    this.listeners.set(jobId, set.add(listener));
    return () => set.delete(listener);
  }

  /** Streams following `jobId` now. */
  followers(jobId: string): number {
    return this.listeners.get(jobId)?.size ?? 0;
  }

  wake(jobId: string): void {
    for (const listener of this.listeners.get(jobId) ?? []) listener();
  }
}

export class InMemoryResultStore implements ResultStore {
  readonly objects = new Map<string, Buffer>();

  async put(key: string, data: Uint8Array): Promise<void> {
    this.objects.set(key, Buffer.from(data));
  }

  async get(key: string): Promise<Buffer | null> {
    return this.objects.get(key) ?? null;
  }

  async stat(key: string): Promise<StoredObject | null> {
    const data = this.objects.get(key);
    return data ? { size: data.length, etag: `"${createHash('sha256').update(data).digest('hex')}"` } : null;
  }

  async open(key: string): Promise<OpenedObject | null> {
    const stored = await this.stat(key);
    return stored && { ...stored, body: Readable.from([this.objects.get(key)!]) };
  }

  async deleteJob(jobId: string): Promise<void> {
    for (const key of this.objects.keys()) if (key.startsWith(`${jobId}/`)) this.objects.delete(key);
  }

  async verify(): Promise<void> {}

  close(): void {}
}

export interface FakeInfrastructure extends ApiInfrastructure {
  readonly jobs: InMemoryJobService;
  readonly eventHub: InMemoryEventHub;
  readonly resultStore: InMemoryResultStore;
}

export function fakeInfrastructure(): FakeInfrastructure {
  const jobs = new InMemoryJobService();
  const eventHub = new InMemoryEventHub();
  jobs.onEvent = (jobId) => eventHub.wake(jobId);
  return { jobs, eventHub, resultStore: new InMemoryResultStore() };
}

/** The app on fake infrastructure; `env` overrides the test configuration. */
export async function buildFakeApp(env: Record<string, string> = {}): Promise<{ app: FastifyInstance; infrastructure: FakeInfrastructure }> {
  const infrastructure = fakeInfrastructure();
  const config = loadApiConfig({ MODEL_DIR: TINY_MODEL_DIR, LOG_LEVEL: 'silent', SSE_HEARTBEAT_MS: '200', ...env });
  const app = await buildApp(config, { infrastructure, logger: false });
  return { app, infrastructure };
}
