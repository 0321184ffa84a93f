import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { REPO } from '../scripts/compiled.mjs';

// deploy/compose/two-gpus.yml, one worker per GPU on a two-GPU machine, as an operator stacks it on
// docker-compose.yml: Compose accepts the pair (no Docker engine here: `config` only), the two
// workers pick different GPUs and names, and the second worker is the first in everything else, so
// that the copy cannot drift from docker-compose.yml unnoticed.

const FILES = ['-f', 'docker-compose.yml', '-f', 'deploy/compose/two-gpus.yml'];

interface Service {
  environment?: Record<string, string>;
  deploy?: { resources?: { reservations?: { devices?: { count?: number | string; device_ids?: string[] }[] } } };
  [field: string]: unknown;
}

/** `docker-compose <FILES> config [args]`: exit status, output, errors. */
function compose(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile('docker-compose', [...FILES, 'config', ...args], { cwd: REPO, maxBuffer: 1 << 22 }, (error, stdout, stderr) => {
      if (error && (error as NodeJS.ErrnoException).code === 'ENOENT') reject(new Error('docker-compose is not installed (Debian: apt-get install docker-compose)'));
      else resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** A service without what tells the two workers apart. */
function sharedPart(service: Service): Service {
  const environment = { ...service.environment };
  delete environment['ORT_DEVICE_ID'];
  delete environment['WORKER_ID'];
  const rest = { ...service, environment };
  delete rest.deploy;
  return rest;
}

describe('deploy/compose/two-gpus.yml', () => {
  it('is accepted by docker-compose config on top of docker-compose.yml', async () => {
    expect(await compose(['-q'])).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('runs two workers on different GPUs under different names, alike in everything else', async () => {
    const merged = parse((await compose([])).stdout) as { services: Record<string, Service> };
    const first = merged.services['worker'] as Service;
    const second = merged.services['worker-gpu1'] as Service;
    expect(first.environment?.['ORT_PROVIDER']).toBe('cuda');
    expect([first.environment?.['ORT_DEVICE_ID'], second.environment?.['ORT_DEVICE_ID']]).toEqual(['0', '1']);
    expect([first.environment?.['WORKER_ID'], second.environment?.['WORKER_ID']]).toEqual(['gpu0', 'gpu1']);
    // The first reserves one GPU (device 0 inside its container), the second sees all and picks device 1.
    expect(first.deploy?.resources?.reservations?.devices).toEqual([expect.objectContaining({ count: 1 })]);
    expect(second.deploy?.resources?.reservations?.devices).toEqual([expect.objectContaining({ count: 'all' })]);
    expect(sharedPart(second)).toEqual(sharedPart(first));
  });
});
