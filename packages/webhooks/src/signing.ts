import { createHmac } from 'node:crypto';

// Standard Webhooks signatures (https://www.standardwebhooks.com): the receiver checks the
// HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>" under the secret they share with us,
// so a body, an id or a timestamp changed on the way (or replayed much later) is refused.

const SECRET_PREFIX = 'whsec_';
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Why a secret is not a `whsec_` secret, or null when it is one. */
export function secretProblem(secret: string): string | null {
  if (!secret.startsWith(SECRET_PREFIX)) return `must start with ${SECRET_PREFIX}`;
  const key = secret.slice(SECRET_PREFIX.length);
  if (!BASE64.test(key) || key.length % 4 !== 0) return `must be ${SECRET_PREFIX} followed by base64`;
  // Fewer than 24 bytes of key is guessable; the spec's own secrets carry 24 to 64.
  if (Buffer.from(key, 'base64').length < 24) return 'must carry at least 24 bytes of key (32 base64 characters)';
  return null;
}

/** The HMAC key of a `whsec_` secret: the bytes its base64 part stands for. */
function keyOf(secret: string): Buffer {
  const problem = secretProblem(secret);
  if (problem !== null) throw new Error(`webhook secret ${problem}`);
  return Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64');
}

export interface SignedHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
}

/** The three headers of one delivery of `body` (the exact bytes sent) signed with `secret` at `at`. */
export function signedHeaders(secret: string, webhookId: string, at: Date, body: string): SignedHeaders {
  const timestamp = String(Math.floor(at.getTime() / 1000));
  const mac = createHmac('sha256', keyOf(secret)).update(`${webhookId}.${timestamp}.${body}`).digest('base64');
  return { 'webhook-id': webhookId, 'webhook-timestamp': timestamp, 'webhook-signature': `v1,${mac}` };
}
