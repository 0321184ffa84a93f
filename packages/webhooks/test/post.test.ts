import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postWebhook } from '../src/post.ts';
import { startReceiver, type Receiver } from './support/receiver.ts';

// Real HTTP to a real receiver on loopback. Private addresses are allowed only where a test says
// so; where they are not, the receiver must see nothing at all.

let receiver: Receiver;
beforeAll(async () => {
  receiver = await startReceiver();
});
afterAll(async () => {
  await receiver.close();
});

const headers = { 'webhook-id': 'msg_1' };

describe('postWebhook', () => {
  it('delivers to a loopback receiver when private addresses are allowed; a 2xx is success', async () => {
    receiver.answer = 204;
    const before = receiver.received.length;
    const result = await postWebhook(receiver.url, '{"a":1}', headers, { timeoutMs: 5000, allowPrivate: true });
    expect(result).toEqual({ ok: true, statusCode: 204, error: null });
    expect(receiver.received.slice(before)).toMatchObject([{ body: '{"a":1}', path: '/hooks', headers: { 'webhook-id': 'msg_1', 'content-type': 'application/json' } }]);
  });

  it('refuses a loopback address, and a name resolving to one, without connecting', async () => {
    const before = receiver.received.length;
    const literal = await postWebhook(receiver.url, '{}', headers, { timeoutMs: 5000, allowPrivate: false });
    expect(literal).toMatchObject({ ok: false, statusCode: null, error: expect.stringMatching(/127\.0\.0\.1/) });
    const named = await postWebhook(`http://localhost:${receiver.port}/hooks`, '{}', headers, { timeoutMs: 5000, allowPrivate: false });
    expect(named).toMatchObject({ ok: false, statusCode: null, error: expect.stringMatching(/localhost resolves to/) });
    expect(receiver.received.length).toBe(before);
  });

  it('checks the address it connects to: a DNS answer that turns private after the first check is refused', async () => {
    // The first answer (the check before connecting) is public, the next (the socket's own lookup) loopback.
    let calls = 0;
    const rebinding = async (): Promise<{ address: string; family: number }[]> =>
      calls++ === 0 ? [{ address: '93.184.216.34', family: 4 }] : [{ address: '127.0.0.1', family: 4 }];
    const before = receiver.received.length;
    const result = await postWebhook(`http://rebind.example:${receiver.port}/hooks`, '{}', headers, { timeoutMs: 5000, allowPrivate: false, resolve: rebinding });
    expect(result).toMatchObject({ ok: false, statusCode: null, error: expect.stringMatching(/rebind\.example resolves to 127\.0\.0\.1/) });
    expect(calls).toBe(2);
    expect(receiver.received.length).toBe(before);
  });

  it('connects to the address its lookup answered (a made-up name reaches the receiver when allowed)', async () => {
    receiver.answer = 200;
    const toReceiver = async (): Promise<{ address: string; family: number }[]> => [{ address: '127.0.0.1', family: 4 }];
    const result = await postWebhook(`http://made-up.example:${receiver.port}/hooks`, '{}', headers, { timeoutMs: 5000, allowPrivate: true, resolve: toReceiver });
    expect(result).toEqual({ ok: true, statusCode: 200, error: null });
    expect(receiver.received.at(-1)?.headers.host).toBe(`made-up.example:${receiver.port}`);
  });

  it('does not follow a redirect: a 3xx is a failed attempt, one request', async () => {
    receiver.answer = 302;
    const before = receiver.received.length;
    const result = await postWebhook(receiver.url, '{}', headers, { timeoutMs: 5000, allowPrivate: true });
    expect(result).toEqual({ ok: false, statusCode: 302, error: 'HTTP 302: redirects are not followed' });
    expect(receiver.received.length).toBe(before + 1);
  });

  it('counts a 5xx as a failed attempt', async () => {
    receiver.answer = 503;
    expect(await postWebhook(receiver.url, '{}', headers, { timeoutMs: 5000, allowPrivate: true })).toEqual({ ok: false, statusCode: 503, error: 'HTTP 503' });
  });

  it('gives up on a receiver that never answers after the timeout', async () => {
    receiver.answer = 'hang';
    const started = Date.now();
    const result = await postWebhook(receiver.url, '{}', headers, { timeoutMs: 300, allowPrivate: true });
    expect(result).toEqual({ ok: false, statusCode: null, error: 'no answer within 300 ms' });
    // Well under the receiver's forever; the margin is for a loaded 2-core CI machine.
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  it('fails an attempt when nothing listens', async () => {
    const closed = await startReceiver();
    await closed.close();
    const result = await postWebhook(closed.url, '{}', headers, { timeoutMs: 5000, allowPrivate: true });
    expect(result).toMatchObject({ ok: false, statusCode: null, error: expect.stringMatching(/ECONNREFUSED/) });
  });
});
