import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildWeb } from '@pixelflow/web/build';
import { prepareServices } from '../../bench/service-processes.ts';
import { REPO } from '../../scripts/compiled.mjs';
import { runFuzz } from './checks/fuzz.ts';
import { runQueueCap } from './checks/queue-cap.ts';
import { runRedisRestart } from './checks/redis-restart.ts';
import { runSigtermHandBack } from './checks/sigterm-hand-back.ts';
import { runSlowBodies } from './checks/slow-bodies.ts';
import { runSseChurn } from './checks/sse-churn.ts';
import { runWorkerKills } from './checks/worker-kills.ts';
import { Random } from './random.ts';
import { SuiteRedis } from './redis.ts';
import { formatReports, passed, type CheckReport } from './report.ts';
import { Deployment } from './services.ts';

// `pnpm test:faults`: the whole service under faults, from outside. It starts a redis-server of
// its own (free port, AOF, in a temporary folder; never the shared one at 6379), then, per check,
// the API and worker processes as `pnpm start` runs them (compiled bundles, environment only), and:
//
//   fuzz           malformed requests on every route of /openapi.json and raw-socket HTTP:
//                  no 5xx, every error problem+json with its status, every request answered
//   queue-cap      concurrent POSTs against a small QUEUE_CAP with no worker: never more admitted
//   slow-bodies    sockets that send part of a body, or trickle it: closed, with a 408 problem,
//                  within REQUEST_TIMEOUT_MS
//   sse-churn      hundreds of event streams opened and dropped: open streams, descriptors and
//                  memory back to where they were
//   sigterm        a worker stopped mid-job: its jobs read queued, then finish on the next worker
//   worker-kills   a worker SIGKILLed at random moments under load: no job lost or ended twice,
//                  every image as reported on disk and over HTTP, byte-identical to a clean rerun
//   redis-restart  redis-server SIGKILLed mid-load and restarted on its AOF: every accepted job ends
//
// It prints a Markdown table (what was sent, what came back, pass or fail) and exits 1 if any check
// fails. Sizes default to issue 14's figures; `--quick` shrinks them for CI; `--only a,b` runs some;
// `--seed` replays a run's requests, job parameters and kill moments. All traffic goes to 127.0.0.1.

const FULL = {
  'fuzz-requests': 2000,
  cap: 20,
  'cap-posts': 100,
  'cap-rounds': 5,
  'slow-sockets': 200,
  trickles: 5,
  'sse-streams': 900,
  'handback-jobs': 3,
  'kill-jobs': 100,
  kills: 10,
  'redis-jobs': 60,
  'redis-outage-ms': 5000,
  'request-timeout-ms': 3000,
  'headers-timeout-ms': 2000,
};
type Sizes = typeof FULL;
const QUICK: Sizes = { ...FULL, 'cap-rounds': 2, 'slow-sockets': 100, trickles: 2, 'sse-streams': 300, 'handback-jobs': 1, 'kill-jobs': 30, kills: 3, 'redis-jobs': 20 };

const CHECKS = ['fuzz', 'queue-cap', 'slow-bodies', 'sse-churn', 'sigterm', 'worker-kills', 'redis-restart'] as const;
type CheckName = (typeof CHECKS)[number];

function usage(): string {
  const sizes = Object.entries(FULL).map(([name, value]) => `  --${name} N (default ${value}, --quick ${QUICK[name as keyof Sizes]})`);
  return [
    'usage: pnpm test:faults [--quick] [--only check,...] [--seed N] [--model DIR] [--keep] [sizes]',
    `checks: ${CHECKS.join(', ')}`,
    'sizes:',
    ...sizes,
  ].join('\n');
}

function parseOptions(): { sizes: Sizes; only: CheckName[]; seed: number; model: string; keep: boolean; quick: boolean } {
  const sizeOptions = Object.fromEntries(Object.keys(FULL).map((name) => [name, { type: 'string' as const }]));
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      seed: { type: 'string', default: '14' },
      model: { type: 'string', default: 'test/fixtures/tiny' },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
      ...sizeOptions,
    },
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(`${usage()}\n`);
    process.exit(0);
  }
  const sizes: Sizes = { ...(values.quick ? QUICK : FULL) };
  for (const name of Object.keys(FULL) as (keyof Sizes)[]) {
    const given = (values as Record<string, unknown>)[name];
    if (typeof given !== 'string') continue;
    if (!/^\d+$/.test(given)) throw new Error(`--${name} must be a whole number, not ${JSON.stringify(given)}`);
    sizes[name] = Number(given);
  }
  const only = values.only === undefined ? [...CHECKS] : values.only.split(',').map((name) => name.trim());
  for (const name of only) if (!(CHECKS as readonly string[]).includes(name)) throw new Error(`no check ${JSON.stringify(name)} (checks: ${CHECKS.join(', ')})`);
  if (!/^\d+$/.test(values.seed)) throw new Error(`--seed must be a whole number, not ${JSON.stringify(values.seed)}`);
  if (sizes['headers-timeout-ms'] > sizes['request-timeout-ms']) throw new Error('--headers-timeout-ms must not exceed --request-timeout-ms');
  return { sizes, only: only as CheckName[], seed: Number(values.seed), model: resolve(REPO, values.model), keep: values.keep, quick: values.quick };
}

async function main(): Promise<number> {
  let options;
  try {
    options = parseOptions();
  } catch (error) {
    process.stderr.write(`test:faults: ${(error as Error).message}\n${usage()}\n`);
    return 2;
  }
  const { sizes, seed, model } = options;
  const started = performance.now();
  const root = await mkdtemp(join(tmpdir(), 'pixelflow-faults-'));
  const say = (line: string): void => void process.stderr.write(`test:faults: ${line}\n`);
  say(`${options.quick ? 'quick run' : 'full run'}, seed ${seed}, model ${model}, logs in ${root}`);
  await prepareServices();
  // The web page, built as `pnpm start` builds it, into the run's folder: GET / and its assets are routes too.
  const webDir = join(root, 'web');
  await buildWeb(webDir);
  const redis = await SuiteRedis.start(join(root, 'redis'));
  say(`redis-server (AOF) on ${redis.url}`);
  const deployments: Deployment[] = [];
  const deploy = (name: string, env: Record<string, string> = {}): Deployment => {
    const deployment = new Deployment(name, root, redis, model, { WEB_DIR: webDir, ...env });
    deployments.push(deployment);
    return deployment;
  };
  let interrupted = false;
  const cleanUp = async (): Promise<void> => {
    await Promise.all(deployments.map((d) => d.killAll()));
    await redis.kill();
  };
  process.once('SIGINT', () => {
    interrupted = true;
    void cleanUp().then(() => process.exit(130));
  });

  const runs: Record<CheckName, () => Promise<CheckReport>> = {
    fuzz: () =>
      runFuzz(deploy('fuzz'), new Random(seed), {
        requests: sizes['fuzz-requests'],
        requestTimeoutMs: sizes['request-timeout-ms'],
        headersTimeoutMs: sizes['headers-timeout-ms'],
      }),
    'queue-cap': () => runQueueCap(deploy('queue-cap'), { cap: sizes.cap, posts: sizes['cap-posts'], rounds: sizes['cap-rounds'] }),
    'slow-bodies': () =>
      runSlowBodies(deploy('slow-bodies'), {
        sockets: sizes['slow-sockets'],
        trickles: sizes.trickles,
        requestTimeoutMs: sizes['request-timeout-ms'],
        headersTimeoutMs: sizes['headers-timeout-ms'],
      }),
    'sse-churn': () => runSseChurn(deploy('sse-churn'), new Random(seed + 1), { streams: sizes['sse-streams'] }),
    sigterm: () => runSigtermHandBack(deploy('sigterm'), new Random(seed + 2), { jobs: sizes['handback-jobs'] }),
    'worker-kills': () => runWorkerKills(deploy('worker-kills'), new Random(seed + 3), { jobs: sizes['kill-jobs'], kills: sizes.kills }),
    'redis-restart': () => runRedisRestart(deploy('redis-restart'), redis, new Random(seed + 4), { jobs: sizes['redis-jobs'], outageMs: sizes['redis-outage-ms'] }),
  };

  const reports: CheckReport[] = [];
  for (const name of options.only) {
    if (interrupted) break;
    say(`${name} ...`);
    const checkStarted = performance.now();
    let report: CheckReport;
    try {
      report = await runs[name]();
    } catch (error) {
      // A check that could not run to its end fails with what stopped it.
      report = { name, sent: '-', cameBack: '-', verdicts: [{ ok: false, text: `could not run: ${(error as Error).message.split('\n')[0]}` }], notes: (error as Error).message.split('\n').slice(1), seconds: (performance.now() - checkStarted) / 1000 };
    }
    const deployment = deployments.at(-1);
    await deployment?.killAll();
    if (!passed(report) && deployment) report.notes.push(`logs: ${join(root, deployment.name)}`);
    say(`${name}: ${passed(report) ? 'pass' : 'FAIL'} (${report.seconds.toFixed(1)} s)`);
    reports.push(report);
  }
  await cleanUp();

  const allPassed = reports.length === options.only.length && reports.every(passed);
  const seconds = (performance.now() - started) / 1000;
  const header = `pnpm test:faults${options.quick ? ' --quick' : ''}: seed ${seed}, ${reports.length} checks, ${seconds.toFixed(0)} s, ${allPassed ? 'all passed' : `${reports.filter((r) => !passed(r)).length} failed`}`;
  process.stdout.write(`${formatReports(reports, header)}\n`);
  if (allPassed && !options.keep) await rm(root, { recursive: true, force: true });
  else say(`the run's folder (logs, results, Redis files) is kept: ${root}`);
  return allPassed ? 0 : 1;
}

process.exitCode = await main();
