import { createHash } from 'node:crypto';
import { ApiProblem, ApiUnreachable, createApiClient, dataOf, followJobEvents, type ApiClient, type Job, type JobRequest } from '@pixelflow/client';
import { CliError, UsageError } from '../errors.ts';
import { checkFolder, createFolder, pngFileNames, refuseToReplace, writeAll } from '../files.ts';
import { fieldFlagMessage, GENERATION_FLAGS, parseFlags, requestFromFlags } from '../flags.ts';
import { formatDuration, GenerationProgress } from '../progress.ts';
import { didYouMean } from '../suggest.ts';
import { JOBS_SUMMARY } from './summaries.ts';
import { ProgressFromEvents } from './job-progress.ts';

// `pixelflow jobs`: the same generation as `generate`, run by a service instead of this machine,
// through the generated API client (packages/client): create a job, look at it, watch it with the
// progress bar `generate` shows, cancel it, download its images. Nothing here loads a model.

const COMMAND = 'jobs';
const DEFAULT_API = 'http://127.0.0.1:8080';
/** The server's rule for an Idempotency-Key, checked here so that a bad one is a usage error. */
const IDEMPOTENCY_KEY_RULE = /^[\x20-\x7e]{1,255}$/;

const ACTIONS = ['create', 'get', 'watch', 'cancel', 'download'] as const;
type Action = (typeof ACTIONS)[number];

export const JOBS_USAGE = `Usage: pixelflow jobs <action> [options]

${JOBS_SUMMARY}.

Actions:
  create [generation options]   queue a job; prints its id (--json: the job)
         --watch                  then follow it until it ends
         --out DIR [--force]      then wait for it and download its images
         --idempotency-key KEY    sent as Idempotency-Key: running the command
                                  again with KEY (within 24 h) creates no second job
  get ID                        the job as JSON: status, parameters, progress, result
  watch ID                      follow the job with a progress bar until it ends
  cancel ID                     cancel it (a queued job at once, a running one
                                within one model call)
  download ID [--out DIR] [--force]
                                write its PNGs as pixelflow-<seed>-<i>.png

Generation options (as for pixelflow generate; defaults are the served model's):
  --class N|NAME  --count N  --seed N  --cfg X  --shift X  --steps N|N,N,...
  --solver euler|dopri5

Options for every action:
  --api URL       the service (default: $PIXELFLOW_API, else ${DEFAULT_API})
  --api-key KEY   its API key, when it runs with AUTH=on (default: $PIXELFLOW_API_KEY,
                  which keeps the key out of the process list and shell history)
  --request-id ID sent as X-Request-Id: the service logs it with the job
  --json          print JSON on stdout (create, cancel)
  -h, --help      show this help

Examples:
  pixelflow jobs create --class 7 --count 4 --seed 1 --watch
  id=$(pixelflow jobs create --class 3) && pixelflow jobs watch "$id"
  pixelflow jobs download j0123456789abcdef01234567 --out out/

Progress goes to stderr. Exit status: 0 done (watch: the job succeeded), 1 the job
failed or was canceled, or the service could not be reached, 2 bad input, 130
interrupted (the job itself goes on).
`;

interface JobsArgs {
  action: Action;
  id: string | undefined;
  api: string;
  apiKey: string | undefined;
  requestId: string | undefined;
  idempotencyKey: string | undefined;
  request: Record<string, unknown>;
  watch: boolean;
  out: string | undefined;
  force: boolean;
  json: boolean;
}

function usage(message: string): UsageError {
  return new UsageError(message, { command: COMMAND });
}

export function parseJobsArgs(args: readonly string[], env: NodeJS.ProcessEnv = process.env): JobsArgs | 'help' {
  const parsed = parseFlags(COMMAND, args, {
    ...GENERATION_FLAGS,
    api: { type: 'string' },
    'api-key': { type: 'string' },
    'request-id': { type: 'string' },
    'idempotency-key': { type: 'string' },
    watch: { type: 'boolean', default: false },
    out: { type: 'string' },
    force: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  });
  if (parsed === 'help') return 'help';
  const { values, positionals } = parsed;
  const [name, id, ...extra] = positionals;
  if (name === undefined) throw usage(`which action? one of ${ACTIONS.join(', ')} (see pixelflow jobs --help)`);
  if (!(ACTIONS as readonly string[]).includes(name)) throw usage(`unknown action '${name}'${didYouMean(name, ACTIONS)} (actions: ${ACTIONS.join(', ')})`);
  const action = name as Action;
  if (action === 'create') {
    if (id !== undefined) throw usage(`unexpected argument '${id}' (create takes options only, e.g. --class 3)`);
  } else {
    if (id === undefined) throw usage(`${action} needs a job id, e.g. pixelflow jobs ${action} j0123456789abcdef01234567`);
    if (extra.length > 0) throw usage(`unexpected argument '${extra[0]}'`);
    const request = requestFromFlags(values);
    if (Object.keys(request).length > 0) throw usage(`generation options belong to create, not ${action}`);
  }
  if (values.watch && action !== 'create') throw usage(`--watch belongs to create (${action} ${action === 'watch' ? 'watches already' : 'does not watch'})`);
  if (values.out !== undefined && action !== 'create' && action !== 'download') throw usage(`--out belongs to create and download`);
  if (values.out !== undefined && values.out.trim() === '') throw usage('--out must not be empty');
  const idempotencyKey = values['idempotency-key'];
  if (idempotencyKey !== undefined && action !== 'create') throw usage(`--idempotency-key belongs to create`);
  if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY_RULE.test(idempotencyKey)) throw usage('--idempotency-key must be 1 to 255 printable ASCII characters');
  const api = values.api ?? (env['PIXELFLOW_API'] || DEFAULT_API);
  if (!/^https?:\/\/[^/]/.test(api)) throw usage(`--api must be an http:// or https:// URL, not '${api}'`);
  return {
    action,
    id,
    api,
    apiKey: values['api-key'] ?? (env['PIXELFLOW_API_KEY'] || undefined),
    requestId: values['request-id'],
    idempotencyKey,
    request: requestFromFlags(values),
    watch: values.watch,
    out: values.out ?? (action === 'download' ? '.' : undefined),
    force: values.force,
    json: values.json,
  };
}

/** A problem from the service as one line, in flag terms where it is about a field. */
function cliErrorOf(error: unknown, api: string): unknown {
  if (error instanceof ApiUnreachable) return new CliError(`cannot reach the service at ${api} (${error.message.replace(/^cannot reach \S+ /, '')}); is it running? (pnpm start)`, 1, { command: COMMAND, cause: error });
  if (!(error instanceof ApiProblem)) return error;
  const { problem } = error;
  if (problem.status === 400 && problem.errors && problem.errors.length > 0) {
    const fields = problem.errors.map((e) => fieldFlagMessage(pathOf(e.path), e.message) ?? `${e.path} ${e.message}`);
    return usage(fields.join('; '));
  }
  if (problem.status === 401) return usage(`${problem.detail} (401 unauthorized); pass the key with --api-key or PIXELFLOW_API_KEY`);
  const retry = error.retryAfterSeconds !== null ? `; retry in ${error.retryAfterSeconds} s` : '';
  return new CliError(`${problem.detail} (${problem.status} ${error.kind}${retry})`, problem.status >= 400 && problem.status < 500 && problem.status !== 404 && problem.status !== 409 ? 2 : 1, { command: COMMAND, cause: error });
}

/** `steps[2]` -> ['steps', 2]. */
function pathOf(path: string): (string | number)[] {
  return path.split(/[[\].]/).filter((part) => part !== '').map((part) => (/^\d+$/.test(part) ? Number(part) : part));
}

/** Ctrl-C / SIGTERM stop waiting (the job goes on); a second one exits at once. */
function stopOnSignals(controller: AbortController): () => void {
  const handlers = (['SIGINT', 'SIGTERM'] as const).map((signal) => {
    const status = signal === 'SIGINT' ? 130 : 143;
    const handler = (): void => {
      if (controller.signal.aborted) process.exit(status);
      controller.abort(new CliError(`interrupted by ${signal}; the job goes on (pixelflow jobs cancel stops it)`, status, { command: COMMAND }));
    };
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  return () => {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  };
}

async function getJob(client: ApiClient, id: string): Promise<Job> {
  return dataOf(client.GET('/jobs/{id}', { params: { path: { id } } }));
}

/**
 * Follows the job's events with generate's progress bar on stderr until it ends. Resolves with
 * the job as it ended; the stream resumes by itself after a lost connection.
 */
async function watch(client: ApiClient, args: JobsArgs, id: string, signal: AbortSignal): Promise<Job> {
  const job = await getJob(client, id);
  const { models } = await dataOf(client.GET('/models'));
  const resolutions = models[0]?.stages.map((stage) => stage.resolution) ?? [];
  const euler = job.parameters.solver === 'euler';
  const plan = {
    resolutions,
    // CFG runs the null half too; the per-stage guidance weights are the worker's business, and
    // the ETA corrects itself from the calls it sees.
    batchFactors: resolutions.map(() => (job.parameters.cfg_scale === 1 ? 1 : 2)),
    steps: euler ? job.parameters.steps : null,
  };
  let progress = new GenerationProgress(process.stderr, plan);
  let calls = new ProgressFromEvents(plan.steps);
  let startedAtMs: number | null = null;
  try {
    for await (const event of followJobEvents(args.api, id, { signal, ...(args.apiKey ? { apiKey: args.apiKey } : {}), ...(args.requestId ? { headers: { 'x-request-id': args.requestId } } : {}), onConnection: (state) => state === 'lost' && progress.status('connection lost; resuming ...') })) {
      // Stream ids are the server's clock in ms: timings hold even for events replayed at once.
      const atMs = Number(event.id.split('-')[0]);
      if (event.event !== 'progress') for (const call of calls.flush()) progress.step(call);
      switch (event.event) {
        case 'queued':
          // Also sent again when a started job goes back to the queue (its worker stopped or died):
          // the next attempt starts over, with a bar and an ETA of its own.
          if (startedAtMs !== null) {
            progress.clear();
            progress = new GenerationProgress(process.stderr, plan);
            calls = new ProgressFromEvents(plan.steps);
            startedAtMs = null;
            progress.line(`pixelflow jobs: job ${id} went back to the queue; it will start over`);
          }
          progress.status(`job ${id} queued${event.data.position !== null ? `, position ${event.data.position}` : ''} ...`);
          break;
        case 'started':
          startedAtMs = atMs;
          break;
        case 'progress':
          for (const call of calls.add(event.data, atMs - (startedAtMs ?? atMs))) progress.step(call);
          break;
        case 'stage':
          progress.stageEnd(event.data.stage);
          break;
        case 'succeeded':
          progress.line(`pixelflow jobs: job ${id} succeeded: ${event.data.images.length} ${event.data.images.length === 1 ? 'image' : 'images'}${startedAtMs !== null ? ` in ${formatDuration(atMs - startedAtMs)}` : ''}`);
          break;
        case 'failed':
          progress.line(`pixelflow jobs: job ${id} failed: ${event.data.error.message} (${event.data.error.type})`);
          break;
        case 'canceled':
          progress.line(`pixelflow jobs: job ${id} canceled: ${event.data.reason}`);
          break;
      }
    }
  } catch (error) {
    if (signal.aborted) throw signal.reason as Error;
    throw error;
  } finally {
    progress.clear();
  }
  return getJob(client, id);
}

/** Writes the job's images into `out`, each checked against the sha256 the job reports. */
async function download(client: ApiClient, job: Job, outArg: string, force: boolean, signal: AbortSignal): Promise<string[]> {
  if (job.status !== 'succeeded' || !job.result) {
    const hint = job.status === 'queued' || job.status === 'running' ? `; pixelflow jobs watch ${job.id} waits for it` : '';
    throw new CliError(`job ${job.id} is ${job.status}: it has no images${hint}`, 1, { command: COMMAND });
  }
  const out = await checkFolder('--out', outArg, COMMAND);
  const names = pngFileNames(job.parameters.seed, job.result.images.length);
  if (!force) await refuseToReplace(out, names, COMMAND);
  const files: { name: string; data: Uint8Array }[] = [];
  for (const [n, image] of job.result.images.entries()) {
    const png = new Uint8Array(await dataOf(client.GET('/jobs/{id}/images/{n}', { params: { path: { id: job.id, n: String(n) } }, parseAs: 'arrayBuffer', signal })));
    const sha256 = createHash('sha256').update(png).digest('hex');
    if (sha256 !== image.sha256) throw new CliError(`image ${n} of job ${job.id} arrived damaged (sha256 ${sha256}, the job says ${image.sha256}); nothing written`, 1, { command: COMMAND });
    files.push({ name: names[n] as string, data: png });
  }
  await createFolder('--out', out, COMMAND);
  return writeAll(out, files, signal);
}

function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** The exit status a finished job gives `watch` and `create --watch`. */
function statusOf(job: Job): number {
  return job.status === 'succeeded' ? 0 : 1;
}

async function run(client: ApiClient, args: JobsArgs, signal: AbortSignal): Promise<number> {
  const id = args.id as string;
  switch (args.action) {
    case 'create': {
      const headers = args.idempotencyKey !== undefined ? { 'idempotency-key': args.idempotencyKey } : {};
      const job = await dataOf(client.POST('/jobs', { body: args.request as JobRequest, params: { header: headers } }));
      process.stderr.write(`pixelflow jobs: job ${job.id} queued${job.queue_position !== null ? ` (position ${job.queue_position})` : ''}: class ${job.parameters.class_label} ${JSON.stringify(job.parameters.class_name)}, ${job.parameters.num_images} ${job.parameters.num_images === 1 ? 'image' : 'images'}, seed ${job.parameters.seed}\n`);
      if (args.json) printJson(job);
      else process.stdout.write(`${job.id}\n`);
      if (!args.watch && args.out === undefined) return 0;
      const ended = await watch(client, args, job.id, signal);
      if (args.out !== undefined && ended.status === 'succeeded') {
        for (const path of await download(client, ended, args.out, args.force, signal)) process.stdout.write(`${path}\n`);
      }
      return statusOf(ended);
    }
    case 'get':
      printJson(await getJob(client, id));
      return 0;
    case 'watch':
      return statusOf(await watch(client, args, id, signal));
    case 'cancel': {
      const call = client.DELETE('/jobs/{id}', { params: { path: { id } } });
      const job = await dataOf(call);
      // 202: the worker stops it within one model call; 200: it was queued and is canceled.
      process.stderr.write(`pixelflow jobs: job ${id} ${(await call).response.status === 202 ? 'is stopping (within one model call)' : 'canceled'}\n`);
      if (args.json) printJson(job);
      return 0;
    }
    case 'download': {
      for (const path of await download(client, await getJob(client, id), args.out as string, args.force, signal)) process.stdout.write(`${path}\n`);
      return 0;
    }
  }
}

export async function jobsCommand(argv: readonly string[]): Promise<number> {
  const args = parseJobsArgs(argv);
  if (args === 'help') {
    process.stdout.write(JOBS_USAGE);
    return 0;
  }
  // --out is checked before the job is created: a bad folder costs no job.
  if (args.action === 'create' && args.out !== undefined) await checkFolder('--out', args.out, COMMAND);
  const client = createApiClient(args.api, { ...(args.apiKey ? { apiKey: args.apiKey } : {}), ...(args.requestId ? { headers: { 'x-request-id': args.requestId } } : {}) });
  const controller = new AbortController();
  const stopListening = stopOnSignals(controller);
  try {
    return await run(client, args, controller.signal);
  } catch (error) {
    if (controller.signal.aborted) throw controller.signal.reason as Error;
    throw cliErrorOf(error, args.api);
  } finally {
    stopListening();
  }
}
