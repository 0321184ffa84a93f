import type { components } from './openapi.ts';

// How calls fail, as two errors a caller can tell apart: the API answered with an RFC 9457
// problem (ApiProblem, with its type, status and detail), or it could not be reached at all.

export type Problem = components['schemas']['Problem'];

export class ApiProblem extends Error {
  override name = 'ApiProblem';
  readonly problem: Problem;
  /** Seconds the server asked to wait before retrying (Retry-After), when it said. */
  readonly retryAfterSeconds: number | null;

  constructor(problem: Problem, retryAfterSeconds: number | null = null) {
    super(problem.detail);
    this.problem = problem;
    this.retryAfterSeconds = retryAfterSeconds;
  }

  get status(): number {
    return this.problem.status;
  }

  /** The problem's kind: the last segment of its type, e.g. "queue-full". */
  get kind(): string {
    return this.problem.type.replace(/^.*\//, '');
  }
}

export class ApiUnreachable extends Error {
  override name = 'ApiUnreachable';
}

function isProblem(value: unknown): value is Problem {
  return typeof value === 'object' && value !== null && typeof (value as Problem).status === 'number' && typeof (value as Problem).detail === 'string';
}

/**
 * The error for a response that is not a success: its problem when it sent one, otherwise (a proxy
 * in front of the API answering HTML, say) a problem of our own saying what came back.
 */
export function problemOf(response: Response, body: unknown): ApiProblem {
  const retryAfter = response.headers.get('retry-after');
  const seconds = retryAfter !== null && /^\d+$/.test(retryAfter) ? Number(retryAfter) : null;
  if (isProblem(body)) return new ApiProblem(body, seconds);
  const problem = { type: 'about:blank', title: response.statusText || 'Error', status: response.status, detail: `the server answered ${response.status} ${response.statusText}`.trim() };
  return new ApiProblem(problem, seconds);
}
