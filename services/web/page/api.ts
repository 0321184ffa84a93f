import { createApiClient, dataOf, type JobRequest } from '@pixelflow/client';
import type { GenerationRequest } from '@pixelflow/schemas';

// The public API, as the page uses it: the generated client any integrator has (packages/client),
// on this page's own origin. Only types come from the zod schemas, so zod stays out of the page.

export { ApiProblem, ApiUnreachable } from '@pixelflow/client';

/** What the form sends: the request's fields, or the text a user typed where it is not a number. */
export type FormRequest = { [K in keyof GenerationRequest]?: GenerationRequest[K] | string };

// Job states change under the same URL: never from the browser's cache.
const client = createApiClient('', { cache: 'no-store' });

export const api = {
  readiness: () => dataOf(client.GET('/readyz')),
  models: () => dataOf(client.GET('/models')),
  classes: () => dataOf(client.GET('/models/classes')),
  // The form's text goes as typed where it is not a number: the server's validation names the field.
  createJob: (request: FormRequest) => dataOf(client.POST('/jobs', { body: request as JobRequest })),
  job: (id: string) => dataOf(client.GET('/jobs/{id}', { params: { path: { id } } })),
  cancel: (id: string) => dataOf(client.DELETE('/jobs/{id}', { params: { path: { id } } })),
};
