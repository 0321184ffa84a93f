import { request as httpRequest, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import { allowedAddresses, hostOf, parsedWebhookUrl, systemResolve, type Resolve } from './address-policy.ts';

// One delivery attempt: a POST that connects only to an address the policy allows. The check
// happens inside the socket's own DNS lookup, so the address checked is the address connected
// to: a name whose answer changes between a check and the connection (DNS rebinding) cannot
// slip a private address in. Redirects are never followed (Node's http does not), so a 3xx is
// the receiver's answer, and a failed attempt.

export interface PostOptions {
  timeoutMs: number;
  allowPrivate: boolean;
  resolve?: Resolve;
}

/** How one attempt went: the receiver's status code, or why there was none. */
export type AttemptResult = { ok: boolean; statusCode: number | null; error: string | null };

/** A `lookup` for net.connect that answers only with allowed addresses and fails otherwise. */
export function guardedLookup(allowPrivate: boolean, resolve: Resolve): LookupFunction {
  return (hostname, options, callback) => {
    allowedAddresses(hostname, allowPrivate, resolve).then(
      (addresses) => {
        const wanted = options.family === 4 || options.family === 6 ? addresses.filter((a) => a.family === options.family) : addresses;
        if (wanted.length === 0) return callback(Object.assign(new Error(`host ${hostname} has no IPv${options.family} address`), { code: 'ENOTFOUND' }), '', 0);
        if (options.all === true) return (callback as unknown as (e: null, a: typeof wanted) => void)(null, wanted);
        const [first] = wanted as [{ address: string; family: number }];
        callback(null, first.address, first.family);
      },
      (error: Error) => callback(Object.assign(error, { code: 'EWEBHOOKADDRESS' }), '', 0),
    );
  };
}

/** POSTs `body` to `url`; resolves with how it went (never rejects). A 2xx is the one success. */
export async function postWebhook(urlText: string, body: string, headers: Record<string, string>, options: PostOptions): Promise<AttemptResult> {
  const resolve = options.resolve ?? systemResolve;
  try {
    const url = parsedWebhookUrl(urlText);
    // A literal address never reaches `lookup`: check it here.
    await allowedAddresses(hostOf(url), options.allowPrivate, resolve);
    const statusCode = await send(url, body, headers, { timeout: options.timeoutMs, lookup: guardedLookup(options.allowPrivate, resolve) });
    if (statusCode >= 200 && statusCode < 300) return { ok: true, statusCode, error: null };
    const error = statusCode >= 300 && statusCode < 400 ? `HTTP ${statusCode}: redirects are not followed` : `HTTP ${statusCode}`;
    return { ok: false, statusCode, error };
  } catch (error) {
    return { ok: false, statusCode: null, error: (error as Error).message };
  }
}

function send(url: URL, body: string, headers: Record<string, string>, { timeout, lookup }: { timeout: number; lookup: LookupFunction }): Promise<number> {
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const requestOptions: RequestOptions = {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'user-agent': 'PixelFlow-Serve-Webhooks' },
    lookup,
    // The whole attempt, connection to answer: a receiver that never answers fails the attempt.
    signal: AbortSignal.timeout(timeout),
    agent: false,
  };
  return new Promise((resolve, reject) => {
    const req = request(url, requestOptions, (response) => {
      // The body is the receiver's business; read it away so the socket closes.
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
      response.on('error', reject);
    });
    req.on('error', (error: Error & { code?: string }) => {
      reject(error.name === 'AbortError' || error.code === 'ABORT_ERR' ? new Error(`no answer within ${timeout} ms`) : error);
    });
    req.end(body);
  });
}
