import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { CommonEnv, EnvError, intVar, parseEnv } from '../src/env.ts';

function problems(run: () => unknown): readonly string[] {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(EnvError);
    return (error as EnvError).problems;
  }
  throw new Error('expected an EnvError');
}

describe('parseEnv', () => {
  it('fills defaults, treating empty variables as unset', () => {
    expect(parseEnv(CommonEnv, { REDIS_URL: '', LOG_LEVEL: 'debug' })).toEqual({
      REDIS_URL: 'redis://127.0.0.1:6379',
      REDIS_PREFIX: 'pixelflow',
      RESULTS_DIR: 'data/results',
      JOB_RETENTION_SECONDS: 86400,
      LOG_LEVEL: 'debug',
    });
  });

  it('names every bad variable with its rule and its value', () => {
    const schema = CommonEnv.extend({ PORT: intVar(1, 65535, 8080) });
    expect(
      problems(() =>
        parseEnv(schema, { REDIS_URL: 'localhost:6379', PORT: '80x', JOB_RETENTION_SECONDS: '5', LOG_LEVEL: 'loud', REDIS_PREFIX: 'a b' }),
      ),
    ).toEqual([
      'REDIS_URL must be a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379 (got "localhost:6379")',
      'REDIS_PREFIX must be letters, digits, \'_\', \'.\' or \'-\' (got "a b")',
      'JOB_RETENTION_SECONDS must be an integer from 60 to 31536000 (got "5")',
      'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent (got "loud")',
      'PORT must be an integer from 1 to 65535 (got "80x")',
    ]);
    expect(parseEnv(schema, { PORT: ' 9000 ' }).PORT).toBe(9000);
    expect(problems(() => parseEnv(z.object({ N: intVar(1, 3, 2) }), { N: '4' }))).toEqual(['N must be an integer from 1 to 3 (got "4")']);
  });
});

describe('Redis Sentinel variables', () => {
  it('reads the sentinels as host:port pairs (names, IPv4, bracketed IPv6) and the primary’s name', () => {
    const parsed = parseEnv(CommonEnv, { REDIS_SENTINELS: 'sentinel-1:26379, 10.0.0.2:26380,[::1]:26381', REDIS_SENTINEL_NAME: 'pixelflow-primary' });
    expect(parsed.REDIS_SENTINELS).toEqual([
      { host: 'sentinel-1', port: 26379 },
      { host: '10.0.0.2', port: 26380 },
      { host: '::1', port: 26381 },
    ]);
    expect(parsed.REDIS_SENTINEL_NAME).toBe('pixelflow-primary');
    expect(parseEnv(CommonEnv, {}).REDIS_SENTINELS).toBeUndefined();
  });

  it('refuses a list that is not host:port pairs, and a name with spaces, one line each', () => {
    expect(problems(() => parseEnv(CommonEnv, { REDIS_SENTINELS: 'sentinel-1', REDIS_SENTINEL_NAME: 'my master' }))).toEqual([
      'REDIS_SENTINELS must be a comma-separated list of host:port, e.g. sentinel-1:26379,sentinel-2:26379 (got "sentinel-1")',
      `REDIS_SENTINEL_NAME must be letters, digits, '_', '.' or '-' (got "my master")`,
    ]);
    expect(problems(() => parseEnv(CommonEnv, { REDIS_SENTINELS: 'a:26379,b:70000' }))).toHaveLength(1);
    expect(problems(() => parseEnv(CommonEnv, { REDIS_SENTINELS: ' , ' }))).toHaveLength(1);
  });
});
