import type { ClassList, GenerationRequest, Job, ModelList, Problem, Readiness } from '@pixelflow/schemas';

// The public API, as the page uses it: the same routes any client has (REST + problem+json).
// Types come from the shared zod schemas; only types are imported, so zod stays out of the page.

/** The API answered with an error; `problem` is its RFC 9457 body. */
export class ApiProblem extends Error {
  readonly problem: Problem;

  constructor(problem: Problem) {
    super(problem.detail);
    this.problem = problem;
  }
}

/** The API could not be reached at all. */
export class NetworkError extends Error {}

/** What the form sends: the request's fields, or the text a user typed where it is not a number. */
export type FormRequest = { [K in keyof GenerationRequest]?: GenerationRequest[K] | string };

function isProblem(value: unknown): value is Problem {
  return typeof value === 'object' && value !== null && typeof (value as Problem).status === 'number' && typeof (value as Problem).detail === 'string';
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers: body === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' },
      body: body === undefined ? null : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch (error) {
    throw new NetworkError(`cannot reach the server (${(error as Error).message})`);
  }
  const text = await response.text();
  let data: unknown = null;
  try {
    data = text === '' ? null : JSON.parse(text);
  } catch {
    data = null;
  }
  if (!response.ok) {
    // A proxy in front of the API may answer with HTML; still give the user one clear line.
    throw new ApiProblem(isProblem(data) ? data : { type: 'about:blank', title: response.statusText, status: response.status, detail: `the server answered ${response.status} ${response.statusText}` });
  }
  return data as T;
}

const jobPath = (id: string): string => `/jobs/${encodeURIComponent(id)}`;

export const api = {
  readiness: () => call<Readiness>('GET', '/readyz'),
  models: () => call<ModelList>('GET', '/models'),
  classes: () => call<ClassList>('GET', '/models/classes'),
  createJob: (request: FormRequest) => call<Job>('POST', '/jobs', request),
  job: (id: string) => call<Job>('GET', jobPath(id)),
  cancel: (id: string) => call<Job>('DELETE', jobPath(id)),
  eventsUrl: (id: string, lastEventId: string | null) => `${jobPath(id)}/events${lastEventId === null ? '' : `?last_event_id=${encodeURIComponent(lastEventId)}`}`,
};
