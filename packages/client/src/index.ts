import type { components, operations } from './openapi.ts';

// The client of the PixelFlow Serve API: typed calls (openapi-fetch over the generated types), a
// job's events as an async iterator with resumption, and the two ways a call fails.

export { createApiClient, dataOf, type ApiClient, type ApiClientOptions } from './client.ts';
export { followJobEvents, type FollowOptions, type JobEvent, type JobEventName } from './job-events.ts';
export { ApiProblem, ApiUnreachable, problemOf, type Problem } from './problems.ts';
export type { components, operations, paths } from './openapi.ts';

/** A job as GET /jobs/{id} returns it. */
export type Job = components['schemas']['Job'];

/** The body of POST /jobs. */
export type JobRequest = operations['createJob']['requestBody']['content']['application/json'];
