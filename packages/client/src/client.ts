import createClient, { type Client } from 'openapi-fetch';
import type { paths } from './openapi.ts';
import { ApiUnreachable, problemOf } from './problems.ts';

// The API's routes as typed calls: openapi-fetch over the types generated from the server's own
// OpenAPI document (openapi.ts), so a path, a parameter or a body the server does not take does
// not compile. Every call returns { data, error, response }; `dataOf` turns that into the data or
// an ApiProblem.

export type ApiClient = Client<paths>;

export interface ApiClientOptions {
  /** Sent with every request, e.g. an X-Request-Id. */
  headers?: Record<string, string>;
  /** An API key (`pixelflow keys create`), sent as `Authorization: Bearer <key>`: needed when the server runs with AUTH=on. */
  apiKey?: string;
  /** Another fetch (tests, proxies); the global one by default. */
  fetch?: typeof fetch;
  /** The requests' cache mode in browsers, e.g. 'no-store'. */
  cache?: 'default' | 'no-store' | 'reload' | 'no-cache' | 'force-cache' | 'only-if-cached';
}

/** A client of the API at `baseUrl` ('' in a page served by the API itself: same origin). */
export function createApiClient(baseUrl: string, options: ApiClientOptions = {}): ApiClient {
  const send = options.fetch ?? globalThis.fetch;
  return createClient<paths>({
    baseUrl: baseUrl.replace(/\/+$/, ''),
    ...(options.headers || options.apiKey ? { headers: { ...options.headers, ...bearer(options.apiKey) } } : {}),
    ...(options.cache ? { cache: options.cache } : {}),
    fetch: async (request) => {
      try {
        return await send(request);
      } catch (error) {
        if (request.signal.aborted) throw error;
        throw new ApiUnreachable(`cannot reach ${new URL(request.url).origin} (${(error as Error).message})`, { cause: error });
      }
    },
  });
}

/** The Authorization header of an API key; none without one. */
export function bearer(apiKey: string | undefined): Record<string, string> {
  return apiKey ? { authorization: `Bearer ${apiKey}` } : {};
}

/** What a call of an ApiClient resolves to, for `dataOf`. */
interface CallResult<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The call's data; its problem, as an ApiProblem, when the server answered with an error. */
export async function dataOf<T>(call: Promise<CallResult<T>>): Promise<T> {
  const { data, error, response } = await call;
  if (!response.ok && response.status !== 304) throw problemOf(response, error);
  return data as T;
}
