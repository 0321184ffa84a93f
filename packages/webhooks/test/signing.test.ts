import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { secretProblem, signedHeaders } from '../src/signing.ts';

// The reference library of the specification is the judge of our signatures: what it accepts,
// every receiver built on it (or on the spec) accepts.

const secret = `whsec_${randomBytes(32).toString('base64')}`;
const body = JSON.stringify({ type: 'job.succeeded', timestamp: '2026-11-29T10:00:00.000Z', data: { id: 'j0123456789abcdef01234567', status: 'succeeded' } });

describe('signedHeaders', () => {
  it('signs what standardwebhooks verifies, giving back the same payload', () => {
    const headers = signedHeaders(secret, 'j0123456789abcdef01234567.job.succeeded', new Date(), body);
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+={0,2}$/);
    expect(new Webhook(secret).verify(body, { ...headers })).toEqual(JSON.parse(body));
  });

  it('is refused by standardwebhooks when the body, id, timestamp or secret differ', () => {
    const headers = signedHeaders(secret, 'msg_1', new Date(), body);
    const receiver = new Webhook(secret);
    expect(() => receiver.verify(body.replace('succeeded', 'failed'), { ...headers })).toThrow();
    expect(() => receiver.verify(body, { ...headers, 'webhook-id': 'msg_2' })).toThrow();
    expect(() => receiver.verify(body, { ...headers, 'webhook-timestamp': String(Number(headers['webhook-timestamp']) + 1) })).toThrow();
    expect(() => new Webhook(`whsec_${randomBytes(32).toString('base64')}`).verify(body, { ...headers })).toThrow();
  });

  it('is refused by standardwebhooks when signed too long ago (its replay window)', () => {
    const headers = signedHeaders(secret, 'msg_1', new Date(Date.now() - 3600_000), body);
    expect(() => new Webhook(secret).verify(body, { ...headers })).toThrow(/timestamp/i);
  });

  it('refuses secrets that are not whsec_ base64 of at least 24 bytes', () => {
    expect(secretProblem(secret)).toBeNull();
    expect(secretProblem(randomBytes(32).toString('base64'))).toMatch(/whsec_/);
    expect(secretProblem('whsec_not base64!')).toMatch(/base64/);
    expect(secretProblem(`whsec_${randomBytes(8).toString('base64')}`)).toMatch(/24 bytes/);
    expect(() => signedHeaders('nope', 'msg_1', new Date(), body)).toThrow(/whsec_/);
  });
});
