import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { answers, freePort } from '../../packages/queue/test/support/redis-server.ts';

// The suite's own redis-server, on a free port and a folder of the run's: never the shared one at
// 6379, which the suite would otherwise fill with jobs and which its Redis check kills. Persistence
// is AOF, as docker-compose.yml runs Redis in production, so a SIGKILLed server restarted on the same
// port and folder comes back with what it had accepted. `appendfsync always` rather than the default
// `everysec`: a job answered 202 is then on disk before the answer leaves, so a job missing after the
// restart is the service's loss, not the second of writes that everysec may drop by design.

export class SuiteRedis {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();

  private constructor(port: number, dir: string) {
    this.port = port;
    this.dir = dir;
    this.url = `redis://127.0.0.1:${port}`;
  }

  static async start(dir: string): Promise<SuiteRedis> {
    await mkdir(dir, { recursive: true });
    const redis = new SuiteRedis(await freePort(), dir);
    await redis.launch();
    return redis;
  }

  /** A connection of the suite's own (reads job events and records); the caller closes it. */
  connect(): Redis {
    const client = new Redis(this.url, { maxRetriesPerRequest: 3 });
    client.on('error', () => undefined);
    return client;
  }

  private async launch(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--maxmemory-policy', 'noeviction'];
    const child = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    this.child = child;
    this.exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + 15_000;
    while (!(await answers(this.url))) {
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`redis-server did not start on port ${this.port}${stderr ? `: ${stderr.trim()}` : ''}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** SIGKILL: no shutdown, no final save; resolves once the process is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await this.exited;
    this.child = null;
  }

  /** A new server on the same port and folder: it loads the append-only file. */
  async restart(): Promise<void> {
    await this.kill();
    await this.launch();
  }
}
