import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { Script } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { REPO } from '../scripts/compiled.mjs';
import { loadApiConfig } from '../services/api/src/config.ts';
import { loadWorkerConfig } from '../services/worker/src/config.ts';

// docker-compose.yml and the images as an operator runs them (no Docker engine here): Compose
// itself accepts the file, with and without the monitoring profile, every long-running service has
// a health check that runs in its image, the worker's metrics stay on the Compose network, neither
// image runs as root, Prometheus and Grafana find the files they are given where they look, and
// the API and the worker keep results in the MinIO bucket that a one-shot service creates.

interface Service {
  image?: string;
  profiles?: string[];
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  expose?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
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

/** `docker-compose ...args config -q` in the repository: its exit status and what it said. */
function composeConfig(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile('docker-compose', [...args, 'config', '-q'], { cwd: REPO }, (error, _stdout, stderr) => {
      if (error && (error as NodeJS.ErrnoException).code === 'ENOENT') reject(new Error('docker-compose is not installed (Debian: apt-get install docker-compose)'));
      else resolve({ code: error ? Number(error.code ?? 1) : 0, stderr });
    });
  });
}

describe('docker-compose.yml', () => {
  it('is accepted by docker-compose config', async () => {
    expect(await composeConfig([])).toEqual({ code: 0, stderr: '' });
  });

  it('is accepted with the monitoring profile too', async () => {
    expect(await composeConfig(['--profile', 'monitoring'])).toEqual({ code: 0, stderr: '' });
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

/** The file as Compose resolves it (anchors merged, ${VAR:-default} filled in with the defaults). */
function resolvedCompose(): Promise<{ services: Record<string, Service>; volumes?: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('MINIO_')));
    execFile('docker-compose', ['config'], { cwd: REPO, env }, (error, stdout) => (error ? reject(error) : resolve(parse(stdout) as { services: Record<string, Service> })));
  });
}

describe('results in MinIO', () => {
  it('configures the API and the worker for the same bucket on the MinIO service, valid for their env schemas', async () => {
    const { services, volumes } = await resolvedCompose();
    const api = services['api']?.environment ?? {};
    const worker = services['worker']?.environment ?? {};
    for (const [name, env] of Object.entries({ api, worker })) {
      expect(env, name).toMatchObject({ RESULTS_STORE: 's3', S3_ENDPOINT: 'http://minio:9000', S3_BUCKET: 'pixelflow', S3_FORCE_PATH_STYLE: 'true' });
      expect(env['AWS_ACCESS_KEY_ID'], name).toBe(services['minio']?.environment?.['MINIO_ROOT_USER']);
      expect(env['AWS_SECRET_ACCESS_KEY'], name).toBe(services['minio']?.environment?.['MINIO_ROOT_PASSWORD']);
      // Neither needs the other's disk any more.
      expect(services[name]?.volumes ?? [], name).toEqual([]);
      expect(services[name]?.depends_on?.['minio-setup'], name).toEqual({ condition: 'service_completed_successfully' });
    }
    expect(() => loadApiConfig(api)).not.toThrow();
    expect(() => loadWorkerConfig(worker)).not.toThrow();
    // Browsers cannot resolve http://minio:9000: the API streams.
    expect(loadApiConfig(api).RESULTS_REDIRECT).toBe('stream');
    expect(Object.keys(volumes ?? {})).toContain('minio-data');
  });

  it('creates the bucket before the API and the worker start, once, with a lifecycle rule as a backstop', async () => {
    const { services } = await resolvedCompose();
    const setup = services['minio-setup'];
    expect(setup?.image).toMatch(/^minio\/mc:RELEASE\.\d{4}-/);
    expect(services['minio']?.image).toMatch(/^minio\/minio:RELEASE\.\d{4}-/);
    const script = (setup?.command ?? []).join('\n');
    expect(script).toContain('mc alias set store http://minio:9000');
    expect(script).toContain(`mc mb --ignore-existing store/${services['api']?.environment?.['S3_BUCKET']}`);
    expect(script).toMatch(/mc ilm rule add --expire-days \d+ store\/pixelflow/);
    // MinIO's API stays on the Compose network; only its console is published, on loopback.
    expect(services['minio']?.ports).toEqual(['127.0.0.1:9001:9001/tcp']);
  });
});

interface Mount {
  source: string;
  target: string;
  readOnly: boolean;
}

/** A service's bind mounts of repository paths (./...), as Compose's short syntax writes them. */
function bindMounts(service: string): Mount[] {
  return (compose.services[service]?.volumes ?? [])
    .filter((volume) => volume.startsWith('./'))
    .map((volume) => {
      const [source = '', target = '', mode = ''] = volume.split(':');
      return { source: join(REPO, source), target, readOnly: mode.split(',').includes('ro') };
    });
}

/** Where `containerPath` of `service` is in the repository, through its bind mounts. */
function inRepository(service: string, containerPath: string): string {
  const mount = bindMounts(service).find((m) => containerPath === m.target || containerPath.startsWith(`${m.target}/`));
  if (!mount) throw new Error(`${service}: nothing of the repository is mounted at ${containerPath}`);
  return join(mount.source, posix.relative(mount.target, containerPath));
}

describe('the monitoring profile', () => {
  const prometheusConfig = parse(readFileSync(join(REPO, 'deploy/prometheus/prometheus.yml'), 'utf8')) as { rule_files: string[] };
  const datasources = parse(readFileSync(join(REPO, 'deploy/grafana/provisioning/datasources/prometheus.yml'), 'utf8')) as { datasources: { url: string }[] };
  const providers = parse(readFileSync(join(REPO, 'deploy/grafana/provisioning/dashboards/pixelflow.yml'), 'utf8')) as { providers: { options: { path: string } }[] };

  it('runs Prometheus and Grafana only when asked for, from pinned images', () => {
    for (const name of ['prometheus', 'grafana']) {
      expect(compose.services[name]?.profiles, name).toEqual(['monitoring']);
      expect(compose.services[name]?.image, name).toMatch(/^[\w./-]+:v?\d+\.\d+\.\d+$/);
    }
    for (const name of ['redis', 'api', 'worker']) expect(compose.services[name]?.profiles, name).toBeUndefined();
  });

  it('mounts deploy/prometheus and deploy/grafana read-only, and every mounted path exists', () => {
    for (const name of ['prometheus', 'grafana']) {
      const mounts = bindMounts(name);
      expect(mounts.length, name).toBeGreaterThan(0);
      for (const mount of mounts) {
        expect(mount.readOnly, `${name}: ${mount.target}`).toBe(true);
        expect(existsSync(mount.source), `${name}: ${mount.source}`).toBe(true);
      }
    }
    expect(bindMounts('prometheus').map((m) => m.source)).toEqual([join(REPO, 'deploy/prometheus')]);
    expect(bindMounts('grafana').map((m) => m.source)).toEqual([join(REPO, 'deploy/grafana/provisioning'), join(REPO, 'deploy/grafana/dashboards')]);
  });

  it("gives Prometheus its configuration and that configuration's rule files where it reads them", () => {
    const flag = compose.services['prometheus']?.command?.find((arg) => arg.startsWith('--config.file='));
    const configFile = inRepository('prometheus', (flag ?? '').slice('--config.file='.length));
    expect(configFile).toBe(join(REPO, 'deploy/prometheus/prometheus.yml'));
    const configDir = posix.dirname((flag ?? '').slice('--config.file='.length));
    for (const rules of prometheusConfig.rule_files) expect(existsSync(inRepository('prometheus', posix.join(configDir, rules))), rules).toBe(true);
  });

  it("gives Grafana its provisioning where Grafana reads it, the dashboards where the provider looks, and a datasource on Compose's Prometheus", () => {
    const provisioning = inRepository('grafana', '/etc/grafana/provisioning');
    expect(readdirSync(join(provisioning, 'datasources'))).toContain('prometheus.yml');
    expect(readdirSync(join(provisioning, 'dashboards'))).toContain('pixelflow.yml');
    for (const provider of providers.providers) {
      expect(readdirSync(inRepository('grafana', provider.options.path)).filter((f) => f.endsWith('.json')).length).toBeGreaterThan(0);
    }
    expect(existsSync(inRepository('grafana', compose.services['grafana']?.environment?.['GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH'] ?? ''))).toBe(true);
    const url = new URL(datasources.datasources[0]?.url ?? '');
    expect(Object.keys(compose.services)).toContain(url.hostname);
    expect(compose.services[url.hostname]?.command).toContain('--config.file=/etc/prometheus/prometheus.yml');
    expect(url.port).toBe('9090'); // Prometheus's own port inside the Compose network
  });

  it("keeps Prometheus (no login) and Grafana on the host's loopback unless the operator says otherwise", () => {
    for (const name of ['prometheus', 'grafana']) {
      for (const port of compose.services[name]?.ports ?? []) expect(port, name).toMatch(/^\$\{\w+:-127\.0\.0\.1:\d+\}:\d+$/);
    }
    expect(compose.services['grafana']?.environment).toMatchObject({ GF_AUTH_ANONYMOUS_ENABLED: 'true', GF_AUTH_ANONYMOUS_ORG_ROLE: 'Viewer', GF_SECURITY_ADMIN_PASSWORD: '${GRAFANA_ADMIN_PASSWORD:-admin}' });
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
