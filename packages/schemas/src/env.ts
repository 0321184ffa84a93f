import { z } from 'zod';
import { formatIssuePath } from './issues.ts';

// Service configuration comes from environment variables, validated with zod
// at start. Each bad variable gets one line that names it, says what it must
// be and what it was, so an operator fixes it without reading our code.

export class EnvError extends Error {
  override name = 'EnvError';
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(`invalid configuration: ${problems.join('; ')}`);
    this.problems = problems;
  }
}

const envInt = (min: number, max: number, rule: string) =>
  z
    .string()
    .regex(/^\s*\d+\s*$/, { error: rule })
    .transform(Number)
    .pipe(z.int().min(min, { error: rule }).max(max, { error: rule }));

/** An integer variable with its range stated in every error. */
export function intVar(min: number, max: number, fallback: number) {
  return envInt(min, max, `must be an integer from ${min} to ${max}`).default(fallback);
}

const LogLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
  error: 'must be one of fatal, error, warn, info, debug, trace, silent',
});

const RedisUrl = z
  .string()
  .refine((text) => /^rediss?:\/\/./.test(text), { error: 'must be a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379' });

const RedisPrefix = z
  .string()
  .regex(/^[A-Za-z0-9_.-]+$/, { error: "must be letters, digits, '_', '.' or '-'" });

const SENTINELS_RULE = 'must be a comma-separated list of host:port, e.g. sentinel-1:26379,sentinel-2:26379';

/** One sentinel's address; a host may be a name, an IPv4 address or a bracketed IPv6 address. */
function sentinelAddress(text: string): { host: string; port: number } | null {
  const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text);
  const port = Number(match?.[2]);
  if (!match || port < 1 || port > 65535) return null;
  return { host: (match[1] as string).replace(/^\[(.*)\]$/, '$1'), port };
}

/** REDIS_SENTINELS: where the sentinels are, which name the Redis primary to connect to. */
const RedisSentinels = z
  .string()
  .transform((text, ctx) => {
    const entries = text.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
    const addresses = entries.map(sentinelAddress);
    if (entries.length === 0 || addresses.includes(null)) {
      ctx.issues.push({ code: 'custom', input: text, message: SENTINELS_RULE });
      return z.NEVER;
    }
    return addresses as { host: string; port: number }[];
  });

/** What the API and the worker both read, with the same defaults. */
export const CommonEnv = z.object({
  REDIS_URL: RedisUrl.default('redis://127.0.0.1:6379'),
  /**
   * Redis Sentinel: the sentinels to ask where the primary is (and again after a failover). With
   * them, REDIS_URL gives only the credentials, database and TLS (rediss://) of the Redis
   * connections; its host and port are not used.
   */
  REDIS_SENTINELS: RedisSentinels.optional(),
  /** The primary's name as the sentinels know it (`sentinel monitor <name> ...`); unset: mymaster, Sentinel's own example. */
  REDIS_SENTINEL_NAME: z.string().regex(/^[A-Za-z0-9._-]+$/, { error: "must be letters, digits, '_', '.' or '-'" }).optional(),
  REDIS_PREFIX: RedisPrefix.default('pixelflow'),
  RESULTS_DIR: z.string().min(1, { error: 'must not be empty' }).default('data/results'),
  JOB_RETENTION_SECONDS: intVar(60, 365 * 24 * 3600, 24 * 3600),
  LOG_LEVEL: LogLevel.default('info'),
});

/** Parses `env` with `schema`; throws EnvError listing every bad variable. */
export function parseEnv<S extends z.ZodType>(schema: S, env: Record<string, string | undefined>): z.output<S> {
  // An empty variable means "not set", as shells and compose files often produce them.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = schema.safeParse(present);
  if (parsed.success) return parsed.data;
  throw new EnvError(
    parsed.error.issues.map((issue) => {
      const name = formatIssuePath(issue.path);
      const value = present[name];
      return `${name} ${issue.message}${value === undefined ? '' : ` (got ${JSON.stringify(value)})`}`;
    }),
  );
}
