import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { pixelflow } from '../../packages/cli/test/support/run-cli.ts';
import { type ApiProcess, REDIS_URL, REPO, startApiProcess, stopApiProcesses } from './support.ts';

// `pixelflow keys` as real processes against two real API processes (AUTH=on) on one Redis: a key
// made by the CLI works on both replicas, and once the CLI revokes it the very next request to
// either replica is a 401; no cache stands between a revocation and the replicas.

const prefix = `pftest-${randomBytes(4).toString('hex')}`;
const env = { ...process.env, REDIS_URL, REDIS_PREFIX: prefix };
const apis: ApiProcess[] = [];
let redis: Redis;

const startApi = (): Promise<ApiProcess> => startApiProcess({ ...env, AUTH: 'on', RESULTS_DIR: join(REPO, 'data/test-cli-keys') });

beforeAll(async () => {
  redis = new Redis(REDIS_URL);
  apis.push(...(await Promise.all([startApi(), startApi()])));
}, 120_000);
afterAll(async () => {
  await stopApiProcesses(apis);
  const stale = await redis.keys(`${prefix}:*`);
  if (stale.length > 0) await redis.del(...stale);
  redis.disconnect();
});

const keys = (...args: string[]) => pixelflow(['keys', ...args], env);
const models = (url: string, key: string) => fetch(`${url}/models`, { headers: { authorization: `Bearer ${key}` } });

describe('pixelflow keys', () => {
  it('makes a key both API replicas accept; a revocation is refused by the other replica on its very next request', async () => {
    const created = await keys('create', '--name', 'replicated', '--rate', '120/min', '--max-active', '4', '--json');
    expect(created.code, created.stderr).toBe(0);
    const { key, webhookSecret, name, ratePerMinute, maxActive, admin } = JSON.parse(created.stdout) as Record<string, unknown>;
    expect({ name, ratePerMinute, maxActive, admin }).toEqual({ name: 'replicated', ratePerMinute: 120, maxActive: 4, admin: false });
    expect(key).toMatch(/^pfk_/);
    expect(webhookSecret).toMatch(/^whsec_/);
    const [one, two] = [apis[0], apis[1]] as [{ url: string }, { url: string }];
    expect((await models(one.url, key as string)).status).toBe(200);
    expect((await models(two.url, key as string)).status).toBe(200);

    const revoked = await keys('revoke', 'replicated');
    expect(revoked).toMatchObject({ code: 0, stderr: "revoked key 'replicated': the API refuses it from its next request\n" });
    expect((await models(two.url, key as string)).status).toBe(401);
    expect((await models(one.url, key as string)).status).toBe(401);
  });

  it('prints the key once in plain text, lists keys without secrets and with their last use', async () => {
    const created = await keys('create', '--name', 'ops', '--admin');
    expect(created.code, created.stderr).toBe(0);
    const key = /^key: (pfk_\S+)$/m.exec(created.stdout)?.[1] as string;
    expect(created.stdout).toMatch(/^webhook secret: whsec_\S+$/m);
    expect(created.stderr).toContain('not shown again');
    expect((await models(apis[0]?.url as string, key)).status).toBe(200);
    const listed = await keys('list');
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^ops {2}admin {2}no limits {2}created \S+ {2}last used \d{4}-/m);
    expect(listed.stdout).not.toContain('pfk_');
    expect(listed.stdout).not.toContain('whsec_');
    const json = JSON.parse((await keys('list', '--json')).stdout) as { name: string }[];
    expect(json.map((info) => info.name)).toContain('ops');
  });

  it('pixelflow jobs sends the key from --api-key or PIXELFLOW_API_KEY, and says so in one line when there is none', async () => {
    const url = apis[0]?.url as string;
    const created = JSON.parse((await keys('create', '--name', 'jobs-cli', '--json')).stdout) as { key: string };
    const other = JSON.parse((await keys('create', '--name', 'jobs-cli-other', '--json')).stdout) as { key: string };
    const without = await pixelflow(['jobs', 'create', '--class', '1', '--steps', '1', '--api', url], env);
    expect(without).toMatchObject({ code: 2, stderr: 'pixelflow jobs: this API needs an API key: send Authorization: Bearer <key> (401 unauthorized); pass the key with --api-key or PIXELFLOW_API_KEY\n' });
    const made = await pixelflow(['jobs', 'create', '--class', '1', '--steps', '1', '--api', url], { ...env, PIXELFLOW_API_KEY: created.key });
    expect(made.code, made.stderr).toBe(0);
    const id = made.stdout.trim();
    const got = await pixelflow(['jobs', 'get', id, '--api', url, '--api-key', created.key], env);
    expect(got.code, got.stderr).toBe(0);
    expect(JSON.parse(got.stdout)).toMatchObject({ id, status: 'queued' });
    // Another key's job does not exist for it.
    const foreign = await pixelflow(['jobs', 'cancel', id, '--api', url], { ...env, PIXELFLOW_API_KEY: other.key });
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toContain(`no job "${id}"`);
  });

  it('refuses taken and unknown names, bad flags and an unreachable Redis in one line each (the flag rules: packages/cli/test/keys-args.test.ts)', async () => {
    await keys('create', '--name', 'taken');
    const cases: [string[], number, string][] = [
      [['create', '--name', 'taken'], 1, 'pixelflow keys: an API key named "taken" already exists; pick another name, or revoke it first\n'],
      [['revoke', 'nobody'], 1, "pixelflow keys: no API key named 'nobody' (pixelflow keys list shows them)\n"],
      [['create', '--name', 'x', '--rate', 'fast'], 2, "pixelflow keys: --rate must be requests a minute from 1 to 1000000, such as 120/min, not 'fast'\n"],
    ];
    for (const [args, code, stderr] of cases) expect(await keys(...args), args.join(' ')).toMatchObject({ code, stderr });
    const unreachable = await pixelflow(['keys', 'list'], { ...env, REDIS_URL: 'redis://127.0.0.1:1' });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/^pixelflow keys: Redis at redis:\/\/127\.0\.0\.1:1 is unreachable \(.*\); is it running\?\n$/);
  });
});
