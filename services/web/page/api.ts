import { createApiClient, dataOf, type JobRequest } from '@pixelflow/client';
import type { GenerationRequest } from '@pixelflow/schemas';

// The public API, as the page uses it: the generated client any integrator has (packages/client),
// on this page's own origin. Only types come from the zod schemas, so zod stays out of the page.

export { ApiProblem, ApiUnreachable } from '@pixelflow/client';

/** What the form sends: the request's fields, or the text a user typed where it is not a number. */
export type FormRequest = { [K in keyof GenerationRequest]?: GenerationRequest[K] | string };

// Job states change under the same URL: never from the browser's cache.
// With AUTH=on every request carries the key; a new key makes a new client.
let apiKey: string | undefined;
let client = createApiClient('', { cache: 'no-store' });

export function useApiKey(key: string | undefined): void {
  apiKey = key;
  client = createApiClient('', { cache: 'no-store', ...(key ? { apiKey: key } : {}) });
}

export function currentApiKey(): string | undefined {
  return apiKey;
}

/**
 * An image or preview as a data: URL, fetched with the key's header (`<img src>` cannot send one).
 * data:, not blob:: the page's Content-Security-Policy allows `img-src 'self' data:` only, and
 * these PNGs are a few kB, so nothing needs revoking.
 */
export async function imageDataUrl(url: string): Promise<string> {
  const response = await fetch(url, { headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {} });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const blob = await response.blob();
  return await new Promise<string>((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result as string);
    reader.onerror = () => reject(reader.error ?? new Error(`${url}: unreadable`));
    reader.readAsDataURL(blob);
  });
}

export const api = {
  readiness: () => dataOf(client.GET('/readyz')),
  models: () => dataOf(client.GET('/models')),
  classes: () => dataOf(client.GET('/models/classes')),
  // The form's text goes as typed where it is not a number: the server's validation names the field.
  createJob: (request: FormRequest) => dataOf(client.POST('/jobs', { body: request as JobRequest })),
  job: (id: string) => dataOf(client.GET('/jobs/{id}', { params: { path: { id } } })),
  cancel: (id: string) => dataOf(client.DELETE('/jobs/{id}', { params: { path: { id } } })),
};
