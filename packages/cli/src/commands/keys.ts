import { answerWithin, ApiKeyName, ApiKeyNameTaken, ApiKeys, connectRedis, describeRedisTarget, keys as makeKeys, redisTarget, type ApiKeyInfo } from '@pixelflow/queue';
import { CommonEnv, EnvError, parseEnv } from '@pixelflow/schemas';
import { CliError, UsageError } from '../errors.ts';
import { parseFlags } from '../flags.ts';
import { didYouMean } from '../suggest.ts';
import { KEYS_SUMMARY } from './summaries.ts';

// `pixelflow keys`: the API keys of a deployment, made, listed and revoked in its Redis (REDIS_URL,
// REDIS_PREFIX, as the services read them). A key and its webhook secret are printed once, when
// made; Redis keeps only the key's hash. A revoked key is refused by every API replica at once.

const COMMAND = 'keys';
const ACTIONS = ['create', 'list', 'revoke'] as const;
type Action = (typeof ACTIONS)[number];
/** How long a command waits for Redis before it says it cannot reach it. */
const REDIS_WAIT_MS = 5000;
const MAX_LIMIT = 1_000_000;

export const KEYS_USAGE = `Usage: pixelflow keys <action> [options]

${KEYS_SUMMARY}.

Actions:
  create --name NAME [--rate N/min] [--max-active N] [--admin]
                     make a key; prints the key and its webhook signing secret,
                     which are shown this once only
  list               every key: name, admin, limits, created, last used
  revoke NAME        delete the key: the API refuses it from its next request

Options:
  --name NAME        1 to 64 letters, digits, _ . or -: the owner of the key's jobs,
                     and what logs and metrics show (never the key)
  --rate N/min       requests a minute the key may make (stored; enforced by a later release)
  --max-active N     jobs the key may have queued or running at once (stored, as --rate)
  --admin            the key may also read and cancel every job
  --json             print JSON on stdout (create, list)
  -h, --help         show this help

Redis is the one the services use: REDIS_URL (default redis://127.0.0.1:6379),
REDIS_SENTINELS / REDIS_SENTINEL_NAME, and REDIS_PREFIX (default pixelflow).

Examples:
  pixelflow keys create --name mobile-app --rate 120/min --max-active 4
  pixelflow keys list
  pixelflow keys revoke mobile-app

Exit status: 0 done, 1 Redis unreachable, the name taken or unknown, 2 bad input.
`;

interface KeysArgs {
  action: Action;
  name: string | undefined;
  ratePerMinute: number | null;
  maxActive: number | null;
  admin: boolean;
  json: boolean;
}

function usage(message: string): UsageError {
  return new UsageError(message, { command: COMMAND });
}

/** `120`, `120/min` or `120/m`: requests a minute. */
function parseRate(text: string | undefined): number | null {
  if (text === undefined) return null;
  const match = /^\s*(\d+)\s*(?:\/\s*(?:m|min|minute))?\s*$/i.exec(text);
  const rate = match ? Number(match[1]) : NaN;
  if (!(rate >= 1 && rate <= MAX_LIMIT)) throw usage(`--rate must be requests a minute from 1 to ${MAX_LIMIT}, such as 120/min, not '${text}'`);
  return rate;
}

function parseMaxActive(text: string | undefined): number | null {
  if (text === undefined) return null;
  const count = /^\s*\d+\s*$/.test(text) ? Number(text) : NaN;
  if (!(count >= 1 && count <= MAX_LIMIT)) throw usage(`--max-active must be a whole number of jobs from 1 to ${MAX_LIMIT}, not '${text}'`);
  return count;
}

function parseName(text: string, flag: string): string {
  const parsed = ApiKeyName.safeParse(text);
  if (!parsed.success) throw usage(`${flag} ${parsed.error.issues[0]?.message ?? 'is not a key name'}, not '${text}'`);
  return parsed.data;
}

export function parseKeysArgs(args: readonly string[]): KeysArgs | 'help' {
  const parsed = parseFlags(COMMAND, args, {
    name: { type: 'string' },
    rate: { type: 'string' },
    'max-active': { type: 'string' },
    admin: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  });
  if (parsed === 'help') return 'help';
  const { values, positionals } = parsed;
  const [action, ...rest] = positionals;
  if (action === undefined) throw usage(`which action? one of ${ACTIONS.join(', ')} (see pixelflow keys --help)`);
  if (!(ACTIONS as readonly string[]).includes(action)) throw usage(`unknown action '${action}'${didYouMean(action, ACTIONS)} (actions: ${ACTIONS.join(', ')})`);
  const creating = action === 'create';
  if (!creating && (values.name !== undefined || values.rate !== undefined || values['max-active'] !== undefined || values.admin)) {
    throw usage(`--name, --rate, --max-active and --admin belong to create, not ${action}`);
  }
  let name: string | undefined;
  if (creating) {
    if (rest.length > 0) throw usage(`unexpected argument '${rest[0]}' (create takes --name NAME)`);
    if (values.name === undefined) throw usage('create needs --name NAME, e.g. pixelflow keys create --name mobile-app');
    name = parseName(values.name, '--name');
  } else if (action === 'revoke') {
    if (rest[0] === undefined) throw usage('revoke needs the name of a key, e.g. pixelflow keys revoke mobile-app (pixelflow keys list shows them)');
    if (rest.length > 1) throw usage(`unexpected argument '${rest[1]}'`);
    name = parseName(rest[0], 'the name');
  } else if (rest.length > 0) throw usage(`unexpected argument '${rest[0]}'`);
  return { action: action as Action, name, ratePerMinute: parseRate(values.rate), maxActive: parseMaxActive(values['max-active']), admin: values.admin, json: values.json };
}

function describe(info: ApiKeyInfo): string {
  const limits = [info.ratePerMinute === null ? null : `${info.ratePerMinute}/min`, info.maxActive === null ? null : `${info.maxActive} active`].filter((part) => part !== null).join(', ');
  return [info.name, info.admin ? 'admin' : 'key', limits || 'no limits', `created ${info.createdAt.toISOString()}`, `last used ${info.lastUsedAt?.toISOString() ?? 'never'}`].join('  ');
}

async function run(store: ApiKeys, args: KeysArgs): Promise<number> {
  const out = (text: string) => process.stdout.write(`${text}\n`);
  const note = (text: string) => process.stderr.write(`${text}\n`);
  if (args.action === 'list') {
    const listed = await store.list();
    if (args.json) out(JSON.stringify(listed));
    else if (listed.length === 0) note('no API keys (pixelflow keys create --name NAME makes one)');
    else for (const info of listed) out(describe(info));
    return 0;
  }
  const name = args.name as string;
  if (args.action === 'revoke') {
    if (!(await store.revoke(name))) throw new CliError(`no API key named '${name}' (pixelflow keys list shows them)`, 1, { command: COMMAND });
    note(`revoked key '${name}': the API refuses it from its next request`);
    return 0;
  }
  try {
    const { key, webhookSecret, info } = await store.create({ name, admin: args.admin, ratePerMinute: args.ratePerMinute, maxActive: args.maxActive });
    if (args.json) out(JSON.stringify({ ...info, key, webhookSecret }));
    else {
      out(`key: ${key}`);
      out(`webhook secret: ${webhookSecret}`);
      note(`created ${describe(info)}; keep the key and the webhook secret now: they are not shown again`);
    }
    return 0;
  } catch (error) {
    if (error instanceof ApiKeyNameTaken) throw new CliError(`${error.message}; pick another name, or revoke it first`, 1, { command: COMMAND });
    throw error;
  }
}

export async function keysCommand(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const args = parseKeysArgs(argv);
  if (args === 'help') {
    process.stdout.write(KEYS_USAGE);
    return 0;
  }
  let config;
  try {
    config = parseEnv(CommonEnv.pick({ REDIS_URL: true, REDIS_SENTINELS: true, REDIS_SENTINEL_NAME: true, REDIS_PREFIX: true }), env);
  } catch (error) {
    if (error instanceof EnvError) throw usage(error.message);
    throw error;
  }
  const target = redisTarget(config);
  const redis = connectRedis(target, 'client', 'pixelflow-cli-keys');
  try {
    return await answerWithin(run(new ApiKeys(redis, makeKeys(config.REDIS_PREFIX)), args), REDIS_WAIT_MS);
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(`${describeRedisTarget(target)} is unreachable (${(error as Error).message}); is it running?`, 1, { command: COMMAND, cause: error });
  } finally {
    redis.disconnect();
  }
}
