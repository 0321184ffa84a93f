import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadApiConfig } from '../services/api/src/config.ts';
import { buildApp } from '../services/api/src/app.ts';
import { loadWorkerConfig } from '../services/worker/src/config.ts';
import { WorkerMetrics } from '../services/worker/src/metrics.ts';
import { REPO } from '../scripts/compiled.mjs';
import { unknownFieldErrors } from './support/k8s-fields.ts';
import { kustomize, type KubeObject } from './support/kubectl.ts';

// deploy/k8s as a cluster would receive it (no cluster here): the base and every overlay rendered
// by the real `kubectl kustomize` (kubectl 1.35, test/support/kubectl.ts), every object validated
// against the Kubernetes schemas (kubernetes-models) and checked for fields its type does not
// have, and what the manifests say checked against the code they run: every environment variable
// is one the process's zod schema reads, with a value it accepts; the probes and ports are the ones
// the API and the worker serve (the real app, the real metrics server, the readiness command run
// as the kubelet would); the worker's grace period outlasts its SHUTDOWN_GRACE_MS; and no secret
// value is in the repository.

const K8S = join(REPO, 'deploy', 'k8s');
const TREES = ['base', ...readdirSync(join(K8S, 'overlays')).map((name) => `overlays/${name}`)];
/** The trees that are deployed as they are (the base leaves the results store to an overlay). */
const DEPLOYABLE = TREES.filter((tree) => tree !== 'base');

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; configMapKeyRef?: unknown; fieldRef?: { fieldPath: string } };
}
interface Probe {
  httpGet?: { path: string; port: string | number };
  exec?: { command: string[] };
}
interface Container {
  name: string;
  image: string;
  ports?: { name?: string; containerPort: number }[];
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface PodSpec {
  containers: Container[];
  volumes?: { name: string; persistentVolumeClaim?: { claimName: string } }[];
  terminationGracePeriodSeconds?: number;
}
interface Deployment extends KubeObject {
  spec: {
    replicas?: number;
    selector: { matchLabels: Record<string, string> };
    strategy?: { rollingUpdate?: { maxSurge?: number | string; maxUnavailable?: number | string } };
    template: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec };
  };
}
interface Service extends KubeObject {
  spec: { selector: Record<string, string>; ports: { name: string; port: number; targetPort: string | number }[] };
}

/**
 * The AWS SDK's own variables: it reads them itself (credentials, region, web identity), so they
 * are in no schema of ours. Only these; any other AWS_ name is a typo.
 */
const AWS_SDK_VARIABLES = new Set([
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_REGION',
  'AWS_DEFAULT_REGION',
  'AWS_ROLE_ARN',
  'AWS_WEB_IDENTITY_TOKEN_FILE',
]);

/** What a Secret the operator creates would hold, for the variables the manifests take from one. */
const SECRET_SAMPLES: Record<string, string> = {
  REDIS_URL: 'redis://:a-password@redis.pixelflow.svc:6379',
  AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE',
  AWS_SECRET_ACCESS_KEY: 'example-secret',
};
const POD_NAME = 'pixelflow-worker-6d5f7c9b8-x2k4q';

const rendered = new Map<string, KubeObject[]>();

beforeAll(async () => {
  for (const tree of TREES) rendered.set(tree, await kustomize(join(K8S, tree)));
});

function objects(tree: string): KubeObject[] {
  const list = rendered.get(tree);
  if (!list) throw new Error(`${tree} was not rendered`);
  return list;
}

function find<T extends KubeObject>(tree: string, kind: string, name: string): T {
  const found = objects(tree).find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`${tree}: no ${kind} ${name}`);
  return found as T;
}

function container(tree: string, component: 'api' | 'worker'): Container {
  const found = find<Deployment>(tree, 'Deployment', `pixelflow-${component}`).spec.template.spec.containers.find((c) => c.name === component);
  if (!found) throw new Error(`${tree}: no container ${component}`);
  return found;
}

/** Every variable a container gets and its value, as the kubelet would set them (secrets: samples). */
function environment(tree: string, c: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const source of c.envFrom ?? []) {
    if (source.secretRef) throw new Error(`${c.name}: envFrom secretRef hides which variables it sets; use secretKeyRef`);
    const map = find<KubeObject & { data?: Record<string, string> }>(tree, 'ConfigMap', source.configMapRef?.name ?? '');
    Object.assign(env, map.data);
  }
  for (const variable of c.env ?? []) {
    const from = variable.valueFrom;
    if (variable.value !== undefined) env[variable.name] = variable.value;
    else if (from?.secretKeyRef) env[variable.name] = SECRET_SAMPLES[variable.name] ?? 'secret';
    else if (from?.fieldRef?.fieldPath === 'metadata.name') env[variable.name] = POD_NAME;
    else throw new Error(`${c.name}: ${variable.name} comes from ${JSON.stringify(from)}, which this test does not know`);
  }
  return env;
}

/** The model class kubernetes-models has for an object's apiVersion and kind. */
async function modelClass(object: KubeObject): Promise<new (data: unknown) => { validate(): void }> {
  const [group, version] = object.apiVersion.includes('/') ? object.apiVersion.split('/') : ['', object.apiVersion];
  const path =
    group === 'monitoring.coreos.com'
      ? `@kubernetes-models/prometheus-operator/${group}/${version}/${object.kind}`
      : `kubernetes-models/${group === '' ? '' : `${group}/`}${version}/${object.kind}`;
  const module = (await import(path)) as Record<string, new (data: unknown) => { validate(): void }>;
  const model = module[object.kind];
  if (!model) throw new Error(`no kubernetes-models class for ${object.apiVersion} ${object.kind}`);
  return model;
}

function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

describe.each(TREES)('deploy/k8s/%s rendered by kubectl kustomize', (tree) => {
  it('renders the API and the worker, each with its Service, disruption budget, and the API autoscaler', () => {
    const names = objects(tree).map((o) => `${o.kind}/${o.metadata.name}`);
    for (const name of ['Deployment/pixelflow-api', 'Service/pixelflow-api', 'HorizontalPodAutoscaler/pixelflow-api', 'PodDisruptionBudget/pixelflow-api']) expect(names).toContain(name);
    for (const name of ['Deployment/pixelflow-worker', 'Service/pixelflow-worker', 'PodDisruptionBudget/pixelflow-worker']) expect(names).toContain(name);
  });

  it('gives only objects that the Kubernetes schemas accept', async () => {
    for (const object of objects(tree)) {
      const Model = await modelClass(object);
      expect(() => new Model(object).validate(), `${object.kind} ${object.metadata.name}`).not.toThrow();
    }
  });

  it('sets only environment variables that the API and worker schemas read, with values they accept', () => {
    const api = environment(tree, container(tree, 'api'));
    const worker = environment(tree, container(tree, 'worker'));
    // zod drops the keys its object does not declare: a key still in the parsed configuration is one
    // the process reads. Parsing also applies every rule the process applies at start.
    const read = (env: Record<string, string>, load: (env: Record<string, string>) => object) => {
      const ours = Object.fromEntries(Object.entries(env).filter(([name]) => !AWS_SDK_VARIABLES.has(name)));
      return { names: Object.keys(ours), parsed: Object.keys(load(ours)) };
    };
    const apiRead = read(api, loadApiConfig);
    const workerRead = read(worker, loadWorkerConfig);
    for (const name of apiRead.names) expect(apiRead.parsed, `API: ${name}`).toContain(name);
    for (const name of workerRead.names) expect(workerRead.parsed, `worker: ${name}`).toContain(name);
  });

  it('gives the API and the worker the same model folder, baked into the images under /app/models', () => {
    const api = loadApiConfig(environment(tree, container(tree, 'api')));
    const worker = loadWorkerConfig(environment(tree, container(tree, 'worker')));
    // The API admits only workers whose weights match the pixelflow.json it read.
    expect(api.MODEL_DIR).toBe(worker.MODEL_DIR);
    expect(worker.MODEL_DIR).toMatch(/^\/app\/models\/[\w.-]+$/);
    const dockerfile = readFileSync(join(REPO, 'deploy', 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^WORKDIR \/app$/m);
    expect(dockerfile).toMatch(/^COPY models \.\/models$/m);
  });

  it("runs the worker on one GPU, with CUDA, and a grace period longer than its SHUTDOWN_GRACE_MS", () => {
    const worker = container(tree, 'worker');
    expect(Number(worker.resources?.limits?.['nvidia.com/gpu'])).toBe(1);
    expect(Number(worker.resources?.requests?.['nvidia.com/gpu'] ?? 1)).toBe(1);
    const config = loadWorkerConfig(environment(tree, worker));
    expect(config.ORT_PROVIDER).toBe('cuda');
    const graceMs = (find<Deployment>(tree, 'Deployment', 'pixelflow-worker').spec.template.spec.terminationGracePeriodSeconds ?? 30) * 1000;
    // After SHUTDOWN_GRACE_MS the worker still hands its jobs back and releases the model and its
    // connections: give that at least 10 s more before the kubelet's SIGKILL.
    expect(graceMs - config.SHUTDOWN_GRACE_MS).toBeGreaterThanOrEqual(10_000);
    expect(container(tree, 'api').resources?.limits?.['nvidia.com/gpu']).toBeUndefined();
  });

  it('replaces workers without a surge pod (it would wait for a GPU that every worker holds)', () => {
    expect(find<Deployment>(tree, 'Deployment', 'pixelflow-worker').spec.strategy?.rollingUpdate?.maxSurge).toBe(0);
  });

  it('probes and exposes the ports the processes listen on, and its Services, budgets and monitors select them', () => {
    const api = container(tree, 'api');
    const worker = container(tree, 'worker');
    const apiConfig = loadApiConfig(environment(tree, api));
    const workerConfig = loadWorkerConfig(environment(tree, worker));
    const portOf = (c: Container, name: string | number) => (typeof name === 'number' ? name : c.ports?.find((p) => p.name === name)?.containerPort);
    expect(api.ports?.map((p) => p.containerPort)).toEqual([apiConfig.PORT]);
    expect(worker.ports?.map((p) => p.containerPort)).toEqual([workerConfig.WORKER_METRICS_PORT]);
    expect(apiConfig.HOST).toBe('0.0.0.0');
    expect(api.livenessProbe?.httpGet).toMatchObject({ path: '/healthz' });
    expect(api.readinessProbe?.httpGet).toMatchObject({ path: '/readyz' });
    expect(portOf(api, api.livenessProbe?.httpGet?.port ?? '')).toBe(apiConfig.PORT);
    expect(portOf(api, api.readinessProbe?.httpGet?.port ?? '')).toBe(apiConfig.PORT);
    expect(worker.livenessProbe?.httpGet).toMatchObject({ path: '/metrics' });
    expect(portOf(worker, worker.livenessProbe?.httpGet?.port ?? '')).toBe(workerConfig.WORKER_METRICS_PORT);
    expect(worker.readinessProbe?.exec?.command.join(' ')).toContain(`http://127.0.0.1:${workerConfig.WORKER_METRICS_PORT}/metrics`);

    for (const [component, c, port] of [['api', api, apiConfig.PORT], ['worker', worker, workerConfig.WORKER_METRICS_PORT]] as const) {
      const deployment = find<Deployment>(tree, 'Deployment', `pixelflow-${component}`);
      const labels = deployment.spec.template.metadata.labels;
      expect(selects(deployment.spec.selector.matchLabels, labels)).toBe(true);
      const service = find<Service>(tree, 'Service', `pixelflow-${component}`);
      expect(selects(service.spec.selector, labels), `Service ${component}`).toBe(true);
      for (const servicePort of service.spec.ports) expect(portOf(c, servicePort.targetPort), `Service ${component}`).toBe(port);
      const budget = find<KubeObject & { spec: { selector: { matchLabels: Record<string, string> } } }>(tree, 'PodDisruptionBudget', `pixelflow-${component}`);
      expect(selects(budget.spec.selector.matchLabels, labels), `PodDisruptionBudget ${component}`).toBe(true);
      // Scrape annotations, for Prometheus configurations that discover pods by them.
      expect(deployment.spec.template.metadata.annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(port), 'prometheus.io/path': '/metrics' });
      for (const monitor of objects(tree).filter((o) => o.kind === 'ServiceMonitor' && o.metadata.name === `pixelflow-${component}`)) {
        const spec = monitor['spec'] as { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string }[] };
        expect(selects(spec.selector.matchLabels, service.metadata.labels ?? {})).toBe(true);
        for (const endpoint of spec.endpoints) {
          expect(service.spec.ports.map((p) => p.name)).toContain(endpoint.port);
          expect(endpoint.path).toBe('/metrics');
        }
      }
    }
  });

  it('scales the API with an autoscaler that targets it, on the CPU it requests, and leaves it the replica count', () => {
    const hpa = find<KubeObject & { spec: { scaleTargetRef: { kind: string; name: string }; minReplicas: number; maxReplicas: number } }>(tree, 'HorizontalPodAutoscaler', 'pixelflow-api');
    expect(hpa.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: 'pixelflow-api' });
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2); // so that the budget lets one go at a time
    expect(hpa.spec.maxReplicas).toBeGreaterThanOrEqual(hpa.spec.minReplicas);
    expect(find<Deployment>(tree, 'Deployment', 'pixelflow-api').spec.replicas).toBeUndefined();
    expect(container(tree, 'api').resources?.requests?.['cpu']).toBeDefined();
  });

  it('takes secrets only by reference: no Secret object, and REDIS_URL and credentials only from secretKeyRef', () => {
    expect(objects(tree).filter((o) => o.kind === 'Secret')).toEqual([]);
    for (const c of [container(tree, 'api'), container(tree, 'worker')]) {
      for (const variable of c.env ?? []) {
        if (variable.name === 'REDIS_URL' || /SECRET|PASSWORD|TOKEN|ACCESS_KEY/.test(variable.name)) {
          expect(variable.valueFrom?.secretKeyRef, `${c.name}: ${variable.name}`).toBeDefined();
        }
      }
    }
    for (const map of objects(tree).filter((o) => o.kind === 'ConfigMap')) {
      const keys = Object.keys((map as KubeObject & { data?: object }).data ?? {});
      expect(keys.filter((key) => key === 'REDIS_URL' || /SECRET|PASSWORD|TOKEN|ACCESS_KEY/.test(key)), map.metadata.name).toEqual([]);
    }
  });
});

describe('every rendered object', () => {
  it('declares no field its Kubernetes type does not have (a misspelt field would be dropped silently)', () => {
    const entries = TREES.flatMap((tree) => objects(tree).map((object) => ({ label: tree, object })));
    expect(unknownFieldErrors(entries)).toEqual([]);
  });
});

describe.each(DEPLOYABLE)('deploy/k8s/%s', (tree) => {
  it('stores results where every API and worker pod reaches them: the same bucket, or the same ReadWriteMany volume', () => {
    const stores = (['api', 'worker'] as const).map((component) => {
      const deployment = find<Deployment>(tree, 'Deployment', `pixelflow-${component}`);
      const c = container(tree, component);
      const config = loadWorkerConfig(environment(tree, c));
      if (config.RESULTS_STORE === 's3') {
        // Credentials by reference to the same Secret keys, or none (the pod's own identity).
        const credentials = (c.env ?? []).filter((v) => AWS_SDK_VARIABLES.has(v.name)).map((v) => `${v.name}<-${JSON.stringify(v.valueFrom?.secretKeyRef)}`);
        return { store: 's3', where: [config.S3_ENDPOINT, config.S3_REGION, config.S3_BUCKET, config.S3_PREFIX, config.S3_FORCE_PATH_STYLE], credentials };
      }
      const mount = c.volumeMounts?.find((m) => m.mountPath === config.RESULTS_DIR);
      const claim = deployment.spec.template.spec.volumes?.find((v) => v.name === mount?.name)?.persistentVolumeClaim?.claimName;
      expect(claim, `${component}: RESULTS_DIR ${config.RESULTS_DIR} is on no volume claim`).toBeDefined();
      const pvc = find<KubeObject & { spec: { accessModes: string[] } }>(tree, 'PersistentVolumeClaim', claim ?? '');
      expect(pvc.spec.accessModes).toContain('ReadWriteMany');
      return { store: 'local', where: [claim] };
    });
    expect(stores[0]).toEqual(stores[1]);
  });

  it('puts everything in one namespace', () => {
    const namespaces = new Set(objects(tree).map((o) => o.metadata.namespace));
    expect([...namespaces]).toEqual(['pixelflow']);
  });
});

describe('deploy/k8s base', () => {
  it('runs the images deploy/Dockerfile builds (targets api and worker)', () => {
    const dockerfile = readFileSync(join(REPO, 'deploy', 'Dockerfile'), 'utf8');
    for (const component of ['api', 'worker'] as const) {
      expect(dockerfile).toMatch(new RegExp(`^FROM \\S+ AS ${component}$`, 'm'));
      expect(dockerfile).toContain(`--target ${component} -t pixelflow-${component} .`);
      expect(container('base', component).image).toBe(`pixelflow-${component}:latest`);
    }
  });

  it("serves the embedded model, which the repository holds where MODEL_DIR says (the image's /app)", () => {
    const dir = loadWorkerConfig(environment('base', container('base', 'worker'))).MODEL_DIR;
    expect(existsSync(join(REPO, relative('/app', dir), 'pixelflow.json'))).toBe(true);
  });
});

describe('the probes against the real processes', () => {
  let scratch: string;
  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'pixelflow-k8s-'));
  });
  afterAll(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  it("answers the API's liveness and readiness paths with the base's configuration (liveness 200, readiness 503 until a worker is ready)", async () => {
    const env = environment('base', container('base', 'api'));
    const config = loadApiConfig({
      ...env,
      // Here instead of the image: the repository for /app, the local Redis under a key prefix of its own.
      MODEL_DIR: join(REPO, relative('/app', env['MODEL_DIR'] ?? '')),
      REDIS_URL: process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379',
      REDIS_PREFIX: `pixelflow-k8s-test-${process.pid}`,
      RESULTS_DIR: scratch,
    });
    const app = await buildApp(config, { logger: false });
    try {
      const live = await app.inject({ method: 'GET', url: container('base', 'api').livenessProbe?.httpGet?.path ?? '' });
      expect(live.statusCode).toBe(200);
      const ready = await app.inject({ method: 'GET', url: container('base', 'api').readinessProbe?.httpGet?.path ?? '' });
      expect(ready.statusCode).toBe(503);
      expect(ready.json()).toMatchObject({ type: '/problems/service-unavailable' });
      expect(ready.json<{ detail: string }>().detail).toMatch(/^no worker with the model pixelflow-mnist/);
    } finally {
      await app.close();
    }
  });

  it("runs the worker's readiness command against the worker's metrics server: not ready until the model is loaded", async () => {
    const worker = container('base', 'worker');
    const configuredPort = loadWorkerConfig(environment('base', worker)).WORKER_METRICS_PORT;
    const metrics = new WorkerMetrics();
    const served = await metrics.serve('127.0.0.1', 0);
    try {
      const live = await fetch(`http://127.0.0.1:${served.port}${worker.livenessProbe?.httpGet?.path ?? ''}`);
      expect(live.status).toBe(200);
      // The kubelet runs the command in the container, where the server listens on the configured port.
      const [program, ...args] = (worker.readinessProbe?.exec?.command ?? []).map((arg) => arg.replace(`:${configuredPort}/`, `:${served.port}/`));
      // Asynchronously: the metrics server answers from this process's event loop.
      const probe = () =>
        new Promise<number | null>((resolve) => {
          const child = spawn(program === 'node' ? process.execPath : (program ?? ''), args, { stdio: 'ignore', timeout: 20_000 });
          child.on('close', (code) => resolve(code));
        });
      expect(await probe()).toBe(1);
      metrics.ready.set(1);
      expect(await probe()).toBe(0);
    } finally {
      await new Promise<void>((resolve) => served.server.close(() => resolve()));
    }
  });
});

describe('deploy/k8s files', () => {
  const files = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? files(join(dir, entry.name)) : [join(dir, entry.name)]));

  it('commit no secret: no Secret, no secretGenerator, no URL with a password', () => {
    for (const file of files(K8S)) {
      const text = readFileSync(file, 'utf8');
      const name = relative(REPO, file);
      expect(text, name).not.toMatch(/^kind:\s*Secret\s*$/m);
      expect(text, name).not.toMatch(/secretGenerator/);
      // user:password@ or :password@ in a URL (the README's placeholders say <password>).
      expect(text.match(/\w+:\/\/[^\s/@<]*:[^\s/@<]+@/g) ?? [], name).toEqual([]);
    }
  });
});
