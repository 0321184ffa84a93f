import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { answers, freePort } from './redis-server.ts';

// Redis Sentinel of a test's own: a primary, a replica of it and one sentinel watching them
// (quorum 1), each a process on a free port of 127.0.0.1 (Debian's redis-server and
// redis-sentinel), never the shared Redis. A test fails over with SENTINEL FAILOVER and asks the
// sentinel which server is the primary.

export const SENTINEL_PRIMARY_NAME = 'pixelflow-test';

export interface SentinelSet {
  /** The sentinel's address, as REDIS_SENTINELS takes it. */
  readonly sentinels: string;
  readonly sentinelPort: number;
  /** The ports of the two Redis servers, the first the primary at start. */
  readonly redisPorts: readonly [number, number];
  /** The port of the server the sentinel calls primary now. */
  primaryPort(): Promise<number>;
  /** Asks the sentinel to fail over (the replica becomes primary); resolves once the sentinel names the new one and it says so itself. */
  failover(timeoutMs?: number): Promise<number>;
  /** Kills all three and deletes their folders. */
  stop(): Promise<void>;
}

interface Started {
  child: ChildProcess;
  exited: Promise<void>;
}

function launch(command: string, args: string[]): Started {
  const child = spawn(command, args, { stdio: 'ignore' });
  return { child, exited: new Promise((resolve) => child.once('exit', () => resolve())) };
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function redisArgs(port: number, dir: string): string[] {
  return ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'];
}

/** Starts the primary, the replica and the sentinel; resolves once the sentinel sees a healthy replica it could promote. */
export async function startSentinelSet(): Promise<SentinelSet> {
  const dir = await mkdtemp(join(tmpdir(), 'pixelflow-sentinel-'));
  const [primaryPort, replicaPort, sentinelPort] = [await freePort(), await freePort(), await freePort()];
  const started: Started[] = [];
  const stop = async (): Promise<void> => {
    for (const { child } of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await Promise.all(started.map((s) => s.exited));
    await rm(dir, { recursive: true, force: true });
  };
  const sentinel = new Redis(sentinelPort, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 1 });
  sentinel.on('error', () => undefined);
  try {
    started.push(launch('redis-server', redisArgs(primaryPort, dir)));
    started.push(launch('redis-server', [...redisArgs(replicaPort, dir), '--dbfilename', 'replica.rdb', '--replicaof', '127.0.0.1', String(primaryPort)]));
    await until(async () => (await answers(`redis://127.0.0.1:${primaryPort}`)) && answers(`redis://127.0.0.1:${replicaPort}`), 'the primary and the replica', 10_000);
    // Sentinel rewrites its configuration file (what it learns, the failovers): a file of its own.
    const config = join(dir, 'sentinel.conf');
    await writeFile(
      config,
      [
        `port ${sentinelPort}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor ${SENTINEL_PRIMARY_NAME} 127.0.0.1 ${primaryPort} 1`,
        `sentinel down-after-milliseconds ${SENTINEL_PRIMARY_NAME} 2000`,
        `sentinel failover-timeout ${SENTINEL_PRIMARY_NAME} 10000`,
        '',
      ].join('\n'),
    );
    started.push(launch('redis-sentinel', [config]));
    await until(() => answers(`redis://127.0.0.1:${sentinelPort}`), 'the sentinel', 10_000);
    await sentinel.connect();
    // SENTINEL FAILOVER refuses ("NOGOODREPLICA") until the sentinel has seen the replica in sync.
    await until(
      async () => {
        const replicas = (await sentinel.call('SENTINEL', 'REPLICAS', SENTINEL_PRIMARY_NAME)) as string[][];
        return replicas.some((fields) => {
          const info = Object.fromEntries(fields.flatMap((value, i) => (i % 2 === 0 ? [[value, fields[i + 1]]] : [])));
          return info['flags'] === 'slave' && info['master-link-status'] === 'ok';
        });
      },
      'the sentinel to see the replica in sync',
      30_000,
    );
  } catch (error) {
    sentinel.disconnect();
    await stop();
    throw error;
  }

  const primaryPortNow = async (): Promise<number> => {
    const [, port] = (await sentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_PRIMARY_NAME)) as [string, string];
    return Number(port);
  };
  return {
    sentinels: `127.0.0.1:${sentinelPort}`,
    sentinelPort,
    redisPorts: [primaryPort, replicaPort],
    primaryPort: primaryPortNow,
    async failover(timeoutMs = 30_000) {
      const before = await primaryPortNow();
      await sentinel.call('SENTINEL', 'FAILOVER', SENTINEL_PRIMARY_NAME);
      let after = before;
      await until(
        async () => {
          after = await primaryPortNow();
          if (after === before) return false;
          const server = new Redis(after, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
          server.on('error', () => undefined);
          try {
            await server.connect();
            return ((await server.call('ROLE')) as [string])[0] === 'master';
          } finally {
            server.disconnect();
          }
        },
        'the failover',
        timeoutMs,
      );
      return after;
    },
    async stop() {
      sentinel.disconnect();
      await stop();
    },
  };
}
