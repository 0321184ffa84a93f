// The API's OpenAPI document as TypeScript types, written by `pnpm client:generate` (openapi-typescript)
// from the document the server serves. Do not edit: change the routes' schemas and regenerate.

export interface paths {
    "/jobs": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Create a generation job
         * @description Validates the request, fills in the model defaults (and a random seed when none is given) and queues it. Follow it with GET /jobs/{id} or GET /jobs/{id}/events.
         */
        post: operations["createJob"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/jobs/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A job: status, parameters, progress, position, ETA, result */
        get: operations["getJob"];
        put?: never;
        post?: never;
        /**
         * Cancel a job
         * @description A queued job is canceled at once (200). A running job stops within one model call (202; follow it until its status is canceled) and keeps the stage previews it reached.
         */
        delete: operations["cancelJob"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/jobs/{id}/images/{n}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A generated image (PNG with its parameters in an iTXt chunk) */
        get: operations["getJobImage"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/jobs/{id}/previews/{n}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The preview PNG of image 0 at the end of stage n (0-based) */
        get: operations["getJobPreview"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/jobs/{id}/events": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The job’s progress as Server-Sent Events
         * @description Events: queued {position}, started {attempt, steps_total}, progress {stage, stages, step, steps_total, fraction} after every model call, stage {stage, stages, resolution, url, png_base64 (when at most 16 KiB)} at the end of each stage, then one of succeeded {images}, failed {error}, canceled {reason}, after which the stream ends. Every event has an id; reconnect with Last-Event-ID (or ?last_event_id=) to get only what was missed. Comment lines are heartbeats.
         */
        get: operations["streamJobEvents"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/models": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The model this service runs */
        get: operations["listModels"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/models/classes": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The classes a job can ask for */
        get: operations["listModelClasses"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/healthz": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Liveness: the API process answers */
        get: operations["getLiveness"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/readyz": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Readiness: Redis answers and a worker has the model loaded
         * @description Load balancers should send traffic only while this is 200. It is 503 while the worker still loads the model (the moment the original demo answered "Bad Gateway").
         */
        get: operations["getReadiness"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/metrics": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Prometheus metrics of the API (the worker serves its own) */
        get: operations["getMetrics"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/problems/{kind}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** What a problem type means */
        get: operations["getProblemType"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        /** @description A webhook told when the job ends, signed as Standard Webhooks say (see docs/webhooks.md) */
        WebhookRequestInput: {
            /** @description Where to POST the events: http(s), no credentials, and not a loopback, private, link-local or metadata address (unless the operator allows them) */
            url: string;
            /** @description The events to deliver; all three when absent */
            events?: ("job.succeeded" | "job.failed" | "job.canceled")[];
        };
        WebhookDelivery: {
            /** @enum {string} */
            event: "job.succeeded" | "job.failed" | "job.canceled";
            /** @description The webhook-id header, the same on every attempt */
            webhook_id: string;
            /**
             * @description pending: not delivered yet (attempts left); delivered: the receiver answered 2xx; failed: every attempt failed
             * @enum {string}
             */
            status: "pending" | "delivered" | "failed";
            attempts: number;
            /** @description The receiver's status code at the last attempt; null when it gave none */
            last_status_code: number | null;
            last_error: string | null;
            delivered_at: string | null;
        };
        /** @description The job's webhook and its deliveries (one per event that happened) */
        JobWebhook: {
            url: string;
            events: ("job.succeeded" | "job.failed" | "job.canceled")[];
            deliveries: components["schemas"]["WebhookDelivery"][];
        };
        JobProgress: {
            /** @description Stage being computed, 0-based (the last stage once finished) */
            stage: number;
            stages: number;
            /** @description Model calls done so far, over all stages */
            step: number;
            /** @description Model calls the job takes (an estimate under dopri5) */
            steps_total: number;
            fraction: number;
        };
        JobImage: {
            /** @description Path of the PNG on this API, e.g. /jobs/{id}/images/0 */
            url: string;
            width: number;
            height: number;
            sha256: string;
        };
        JobError: {
            /** @description Stable machine-readable kind, e.g. "sampling_failed" */
            type: string;
            message: string;
        };
        StagePreview: {
            stage: number;
            resolution: number;
            /** @description Path of the stage-end preview PNG (image 0 of the job) */
            url: string;
        };
        /** @description A generation job */
        Job: {
            id: string;
            /**
             * @description queued -> running -> succeeded | failed | canceled (a queued job can also be canceled)
             * @enum {string}
             */
            status: "queued" | "running" | "succeeded" | "failed" | "canceled";
            /** @description Name of the model that serves (or served) the job */
            model: string;
            /** @description Every parameter a generation runs with, the defaults filled in */
            parameters: {
                class_label: number;
                class_name: string;
                num_images: number;
                seed: number;
                cfg_scale: number;
                noise_shift: number;
                steps: number[];
                /** @enum {string} */
                solver: "euler" | "dopri5";
            };
            progress: components["schemas"]["JobProgress"] | null;
            /** @description 1 = next to run; null unless queued */
            queue_position: number | null;
            /** @description Seconds until the job finishes, from measured throughput; null when unknown or finished */
            eta_seconds: number | null;
            /** Format: date-time */
            created_at: string;
            started_at: string | null;
            finished_at: string | null;
            /** @description When the job and its images are deleted */
            expires_at: string | null;
            previews: components["schemas"]["StagePreview"][];
            result: {
                images: components["schemas"]["JobImage"][];
            } | null;
            error: components["schemas"]["JobError"] | null;
            /** @description The webhook the job named, with its deliveries; null when it named none */
            webhook: components["schemas"]["JobWebhook"] | null;
        };
        Problem: {
            /**
             * Format: uri-reference
             * @description The kind of problem, a path on this API (e.g. /problems/validation) where GET explains it
             */
            type: string;
            title: string;
            status: number;
            detail: string;
            instance?: string;
            /** @description Every failing field (validation problems) */
            errors?: {
                /** @description The failing field, e.g. "steps[2]" or "cfg_scale" */
                path: string;
                message: string;
            }[];
        };
        ModelInfo: {
            name: string;
            resolution: number;
            stages: {
                index: number;
                resolution: number;
            }[];
            /** @description Number of classes; GET /models/classes lists them */
            classes: number;
            parameters: number;
            dtype: string;
            defaults: {
                solver: string;
                cfg_scale: number;
                noise_shift: number;
                steps: number[];
                num_images: number;
                class_label: number;
            };
            /**
             * @description ready: a worker has this model loaded; loading: a worker is loading it; unavailable: no live worker
             * @enum {string}
             */
            status: "ready" | "loading" | "unavailable";
            /** @description Execution provider of the ready worker (cpu or cuda) */
            provider: string | null;
            /** @description Live workers serving this model */
            workers: number;
        };
    };
    responses: never;
    parameters: never;
    requestBodies: never;
    headers: {
        /** @description The request id, on every log line about the request and on the jobs it creates: the client’s own X-Request-Id when it is 1 to 128 of letters, digits and . _ : -, otherwise one the server made */
        "X-Request-Id": string;
        /** @description POST /jobs: the path of the job just created, /jobs/{id}. 307 from an image or preview: a presigned URL of the file in the object store, valid for RESULTS_PRESIGN_SECONDS */
        Location: string;
        /** @description Strong validator of the PNG, in quotes: an image’s sha256 (as in the job’s images), a preview’s from the result store; send it back in If-None-Match */
        ETag: string;
        /** @description A PNG never changes under its URL: public, max-age=31536000, immutable. A 307 to a presigned URL is not to be cached (its URL expires): no-store */
        "Cache-Control": string;
        /** @description Seconds to wait before trying again */
        "Retry-After": number;
        /** @description Requests a minute this API key may send (its rate_per_minute; with AUTH=off, RATE_LIMIT_PER_MINUTE per client address); on every answer to a limited sender */
        "RateLimit-Limit": number;
        /** @description Requests left in the current one-minute window */
        "RateLimit-Remaining": number;
        /** @description Seconds until the current window ends and the count starts again */
        "RateLimit-Reset": number;
        /** @description The RFC 6750 challenge: Bearer realm="pixelflow", with error="invalid_token" when a key was sent and is not valid (unknown, revoked or malformed) */
        "WWW-Authenticate": string;
    };
    pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
    createJob: {
        parameters: {
            query?: never;
            header?: {
                /** @description Makes the request safe to retry: within 24 h, a repeat with the same key (per API key) and the same body (compared as parsed JSON: key order and whitespace do not matter) creates no job and gets the first answer again. The same key with another body is a 422. 1 to 255 printable ASCII characters; a quoted Structured Field string ("...") names the key inside its quotes. */
                "idempotency-key"?: string;
            };
            path?: never;
            cookie?: never;
        };
        /** @description The parameters of one generation: a class and, optionally, how to sample it; and, beside them, a webhook to tell when the job ends */
        requestBody: {
            content: {
                "application/json": {
                    /** @description A class index (0 .. number of classes - 1) or a class name of the model */
                    class: number | string;
                    /** @description Images to generate; the model default when absent */
                    num_images?: number;
                    /** @description Seed of image 0; image i uses (seed + i) mod 2^32. Drawn at random when absent */
                    seed?: number;
                    /** @description Classifier-free guidance scale at the last stage */
                    cfg_scale?: number;
                    /** @description Shift of the within-stage time grid (Euler only) */
                    noise_shift?: number;
                    /** @description Euler steps per stage: one number for every stage, or one per stage */
                    steps?: number | number[];
                    /**
                     * @description euler (fixed steps) or dopri5 (adaptive)
                     * @enum {string}
                     */
                    solver?: "euler" | "dopri5";
                    webhook?: components["schemas"]["WebhookRequestInput"];
                };
            };
        };
        responses: {
            /** @description The job, queued; Location is its URL. With an Idempotency-Key seen before (same API key, same body, within 24 h): the first answer to that key, replayed byte for byte, with the header Idempotent-Replayed: true */
            202: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    Location: components["headers"]["Location"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Job"];
                };
            };
            /** @description Invalid request. /problems/validation (Invalid request): The request body, a path parameter or a query parameter breaks a rule; `errors` lists each failing field. */
            400: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Unauthorized. /problems/unauthorized (Unauthorized): With AUTH=on, the request needs `Authorization: Bearer <key>` with a key that `pixelflow keys create` issued and that has not been revoked; WWW-Authenticate says which was wrong. */
            401: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "WWW-Authenticate": components["headers"]["WWW-Authenticate"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Idempotent request in progress. /problems/idempotency-in-progress (Idempotent request in progress): Another request with this Idempotency-Key is still creating its job; retry after the seconds in Retry-After to get its answer. */
            409: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Request body too large. /problems/body-too-large (Request body too large): The body exceeds the configured BODY_LIMIT_BYTES. */
            413: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Unsupported media type. /problems/unsupported-media-type (Unsupported media type): Request bodies must be application/json. */
            415: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Idempotency key reused. /problems/idempotency-key-reused (Idempotency key reused): This Idempotency-Key was already used (by the same API key, within 24 h) with a different request body; a key stands for one request. Send a new key for a new request. */
            422: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Too many active jobs or Too many requests. /problems/too-many-active-jobs (Too many active jobs): This API key already has as many jobs queued or running as its max_active allows (`pixelflow keys create --max-active`); a place frees when one of them ends in any way (succeeds, fails or is canceled). Retry after the seconds in Retry-After, or when one of your jobs ends. /problems/rate-limited (Too many requests): This API key sent more requests this minute than its rate_per_minute allows (`pixelflow keys create --rate N/min`; with AUTH=off, RATE_LIMIT_PER_MINUTE per client address). Retry after the seconds in Retry-After; RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset say where every answer stands. */
            429: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "Retry-After": components["headers"]["Retry-After"];
                    "RateLimit-Limit": components["headers"]["RateLimit-Limit"];
                    "RateLimit-Remaining": components["headers"]["RateLimit-Remaining"];
                    "RateLimit-Reset": components["headers"]["RateLimit-Reset"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error. /problems/internal (Internal error): Something failed on our side; the log has the details under the request id. */
            500: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Queue full or Service unavailable. /problems/queue-full (Queue full): The queue holds QUEUE_CAP jobs; retry after the number of seconds in Retry-After. /problems/service-unavailable (Service unavailable): Redis or the result store (S3) is unreachable, no worker has its model loaded, or the API is shutting down; retry later. */
            503: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getJob: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The id returned by POST /jobs */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The job */
            200: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Job"];
                };
            };
            /** @description Unauthorized. /problems/unauthorized (Unauthorized): With AUTH=on, the request needs `Authorization: Bearer <key>` with a key that `pixelflow keys create` issued and that has not been revoked; WWW-Authenticate says which was wrong. */
            401: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "WWW-Authenticate": components["headers"]["WWW-Authenticate"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Not found. /problems/not-found (Not found): No such route, job, image or preview (jobs and their files expire after the retention period). */
            404: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Too many requests. /problems/rate-limited (Too many requests): This API key sent more requests this minute than its rate_per_minute allows (`pixelflow keys create --rate N/min`; with AUTH=off, RATE_LIMIT_PER_MINUTE per client address). Retry after the seconds in Retry-After; RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset say where every answer stands. */
            429: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "Retry-After": components["headers"]["Retry-After"];
                    "RateLimit-Limit": components["headers"]["RateLimit-Limit"];
                    "RateLimit-Remaining": components["headers"]["RateLimit-Remaining"];
                    "RateLimit-Reset": components["headers"]["RateLimit-Reset"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error. /problems/internal (Internal error): Something failed on our side; the log has the details under the request id. */
            500: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Service unavailable. /problems/service-unavailable (Service unavailable): Redis or the result store (S3) is unreachable, no worker has its model loaded, or the API is shutting down; retry later. */
            503: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    cancelJob: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The id returned by POST /jobs */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The job, canceled (it was queued) */
            200: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Job"];
                };
            };
            /** @description The job, still running: the worker stops it within one model call */
            202: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Job"];
                };
            };
            /** @description Unauthorized. /problems/unauthorized (Unauthorized): With AUTH=on, the request needs `Authorization: Bearer <key>` with a key that `pixelflow keys create` issued and that has not been revoked; WWW-Authenticate says which was wrong. */
            401: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "WWW-Authenticate": components["headers"]["WWW-Authenticate"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Not found. /problems/not-found (Not found): No such route, job, image or preview (jobs and their files expire after the retention period). */
            404: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Job already finished. /problems/job-finished (Job already finished): A job that succeeded, failed or was canceled cannot be canceled. */
            409: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Too many requests. /problems/rate-limited (Too many requests): This API key sent more requests this minute than its rate_per_minute allows (`pixelflow keys create --rate N/min`; with AUTH=off, RATE_LIMIT_PER_MINUTE per client address). Retry after the seconds in Retry-After; RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset say where every answer stands. */
            429: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "Retry-After": components["headers"]["Retry-After"];
                    "RateLimit-Limit": components["headers"]["RateLimit-Limit"];
                    "RateLimit-Remaining": components["headers"]["RateLimit-Remaining"];
                    "RateLimit-Reset": components["headers"]["RateLimit-Reset"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error. /problems/internal (Internal error): Something failed on our side; the log has the details under the request id. */
            500: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Service unavailable. /problems/service-unavailable (Service unavailable): Redis or the result store (S3) is unreachable, no worker has its model loaded, or the API is shutting down; retry later. */
            503: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getJobImage: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The id returned by POST /jobs */
                id: string;
                /** @description An index: an image index from 0 to 7, in plain decimal */
                n: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The image */
            200: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    ETag: components["headers"]["ETag"];
                    "Cache-Control": components["headers"]["Cache-Control"];
                    [name: string]: unknown;
                };
                content: {
                    "image/png": string;
                };
            };
            /** @description Not modified: the If-None-Match validator matches (weak comparison; lists and * accepted) */
            304: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    ETag: components["headers"]["ETag"];
                    "Cache-Control": components["headers"]["Cache-Control"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description Temporary redirect (RESULTS_REDIRECT=presigned): GET the PNG at Location, a short-lived presigned URL of the S3 object store. The API answered 404 or 503 itself if the file is missing or the store unreachable, and 304 to a matching If-None-Match */
            307: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    Location: components["headers"]["Location"];
                    "Cache-Control": components["headers"]["Cache-Control"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description Invalid request. /problems/validation (Invalid request): The request body, a path parameter or a query parameter breaks a rule; `errors` lists each failing field. */
            400: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Unauthorized. /problems/unauthorized (Unauthorized): With AUTH=on, the request needs `Authorization: Bearer <key>` with a key that `pixelflow keys create` issued and that has not been revoked; WWW-Authenticate says which was wrong. */
            401: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "WWW-Authenticate": components["headers"]["WWW-Authenticate"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Not found. /problems/not-found (Not found): No such route, job, image or preview (jobs and their files expire after the retention period). */
            404: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Too many requests. /problems/rate-limited (Too many requests): This API key sent more requests this minute than its rate_per_minute allows (`pixelflow keys create --rate N/min`; with AUTH=off, RATE_LIMIT_PER_MINUTE per client address). Retry after the seconds in Retry-After; RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset say where every answer stands. */
            429: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "Retry-After": components["headers"]["Retry-After"];
                    "RateLimit-Limit": components["headers"]["RateLimit-Limit"];
                    "RateLimit-Remaining": components["headers"]["RateLimit-Remaining"];
                    "RateLimit-Reset": components["headers"]["RateLimit-Reset"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error. /problems/internal (Internal error): Something failed on our side; the log has the details under the request id. */
            500: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Service unavailable. /problems/service-unavailable (Service unavailable): Redis or the result store (S3) is unreachable, no worker has its model loaded, or the API is shutting down; retry later. */
            503: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getJobPreview: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The id returned by POST /jobs */
                id: string;
                /** @description An index: a stage index from 0 to 15, in plain decimal */
                n: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The preview */
            200: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    ETag: components["headers"]["ETag"];
                    "Cache-Control": components["headers"]["Cache-Control"];
                    [name: string]: unknown;
                };
                content: {
                    "image/png": string;
                };
            };
            /** @description Not modified: the If-None-Match validator matches (weak comparison; lists and * accepted) */
            304: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    ETag: components["headers"]["ETag"];
                    "Cache-Control": components["headers"]["Cache-Control"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description Temporary redirect (RESULTS_REDIRECT=presigned): GET the PNG at Location, a short-lived presigned URL of the S3 object store. The API answered 404 or 503 itself if the file is missing or the store unreachable, and 304 to a matching If-None-Match */
            307: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    Location: components["headers"]["Location"];
                    "Cache-Control": components["headers"]["Cache-Control"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description Invalid request. /problems/validation (Invalid request): The request body, a path parameter or a query parameter breaks a rule; `errors` lists each failing field. */
            400: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Unauthorized. /problems/unauthorized (Unauthorized): With AUTH=on, the request needs `Authorization: Bearer <key>` with a key that `pixelflow keys create` issued and that has not been revoked; WWW-Authenticate says which was wrong. */
            401: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "WWW-Authenticate": components["headers"]["WWW-Authenticate"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Not found. /problems/not-found (Not found): No such route, job, image or preview (jobs and their files expire after the retention period). */
            404: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Too many requests. /problems/rate-limited (Too many requests): This API key sent more requests this minute than its rate_per_minute allows (`pixelflow keys create --rate N/min`; with AUTH=off, RATE_LIMIT_PER_MINUTE per client address). Retry after the seconds in Retry-After; RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset say where every answer stands. */
            429: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "Retry-After": components["headers"]["Retry-After"];
                    "RateLimit-Limit": components["headers"]["RateLimit-Limit"];
                    "RateLimit-Remaining": components["headers"]["RateLimit-Remaining"];
                    "RateLimit-Reset": components["headers"]["RateLimit-Reset"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error. /problems/internal (Internal error): Something failed on our side; the log has the details under the request id. */
            500: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Service unavailable. /problems/service-unavailable (Service unavailable): Redis or the result store (S3) is unreachable, no worker has its model loaded, or the API is shutting down; retry later. */
            503: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    streamJobEvents: {
        parameters: {
            query?: {
                /** @description For clients that cannot send the Last-Event-ID header */
                last_event_id?: string;
            };
            header?: {
                /** @description Resume after this event: only later events are sent */
                "last-event-id"?: string;
            };
            path: {
                /** @description The id returned by POST /jobs */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The job’s events, from the first (or after Last-Event-ID) to the one that ends it */
            200: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "text/event-stream": unknown;
                };
            };
            /** @description Invalid request. /problems/validation (Invalid request): The request body, a path parameter or a query parameter breaks a rule; `errors` lists each failing field. */
            400: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Unauthorized. /problems/unauthorized (Unauthorized): With AUTH=on, the request needs `Authorization: Bearer <key>` with a key that `pixelflow keys create` issued and that has not been revoked; WWW-Authenticate says which was wrong. */
            401: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "WWW-Authenticate": components["headers"]["WWW-Authenticate"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Not found. /problems/not-found (Not found): No such route, job, image or preview (jobs and their files expire after the retention period). */
            404: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Too many requests. /problems/rate-limited (Too many requests): This API key sent more requests this minute than its rate_per_minute allows (`pixelflow keys create --rate N/min`; with AUTH=off, RATE_LIMIT_PER_MINUTE per client address). Retry after the seconds in Retry-After; RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset say where every answer stands. */
            429: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "Retry-After": components["headers"]["Retry-After"];
                    "RateLimit-Limit": components["headers"]["RateLimit-Limit"];
                    "RateLimit-Remaining": components["headers"]["RateLimit-Remaining"];
                    "RateLimit-Reset": components["headers"]["RateLimit-Reset"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error. /problems/internal (Internal error): Something failed on our side; the log has the details under the request id. */
            500: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Service unavailable. /problems/service-unavailable (Service unavailable): Redis or the result store (S3) is unreachable, no worker has its model loaded, or the API is shutting down; retry later. */
            503: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    listModels: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The model, with its state */
            200: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        models: components["schemas"]["ModelInfo"][];
                    };
                };
            };
            /** @description Unauthorized. /problems/unauthorized (Unauthorized): With AUTH=on, the request needs `Authorization: Bearer <key>` with a key that `pixelflow keys create` issued and that has not been revoked; WWW-Authenticate says which was wrong. */
            401: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "WWW-Authenticate": components["headers"]["WWW-Authenticate"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Too many requests. /problems/rate-limited (Too many requests): This API key sent more requests this minute than its rate_per_minute allows (`pixelflow keys create --rate N/min`; with AUTH=off, RATE_LIMIT_PER_MINUTE per client address). Retry after the seconds in Retry-After; RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset say where every answer stands. */
            429: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "Retry-After": components["headers"]["Retry-After"];
                    "RateLimit-Limit": components["headers"]["RateLimit-Limit"];
                    "RateLimit-Remaining": components["headers"]["RateLimit-Remaining"];
                    "RateLimit-Reset": components["headers"]["RateLimit-Reset"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error. /problems/internal (Internal error): Something failed on our side; the log has the details under the request id. */
            500: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Service unavailable. /problems/service-unavailable (Service unavailable): Redis or the result store (S3) is unreachable, no worker has its model loaded, or the API is shutting down; retry later. */
            503: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    listModelClasses: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The classes, by index */
            200: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        classes: {
                            index: number;
                            name: string;
                        }[];
                    };
                };
            };
            /** @description Unauthorized. /problems/unauthorized (Unauthorized): With AUTH=on, the request needs `Authorization: Bearer <key>` with a key that `pixelflow keys create` issued and that has not been revoked; WWW-Authenticate says which was wrong. */
            401: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "WWW-Authenticate": components["headers"]["WWW-Authenticate"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Too many requests. /problems/rate-limited (Too many requests): This API key sent more requests this minute than its rate_per_minute allows (`pixelflow keys create --rate N/min`; with AUTH=off, RATE_LIMIT_PER_MINUTE per client address). Retry after the seconds in Retry-After; RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset say where every answer stands. */
            429: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "Retry-After": components["headers"]["Retry-After"];
                    "RateLimit-Limit": components["headers"]["RateLimit-Limit"];
                    "RateLimit-Remaining": components["headers"]["RateLimit-Remaining"];
                    "RateLimit-Reset": components["headers"]["RateLimit-Reset"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error. /problems/internal (Internal error): Something failed on our side; the log has the details under the request id. */
            500: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getLiveness: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The process is alive */
            200: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        /** @enum {string} */
                        status: "ok";
                    };
                };
            };
            /** @description Internal error. /problems/internal (Internal error): Something failed on our side; the log has the details under the request id. */
            500: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getReadiness: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Ready: Redis answers and a worker has the model loaded */
            200: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        /** @enum {string} */
                        status: "ready";
                        workers: number;
                    };
                };
            };
            /** @description Internal error. /problems/internal (Internal error): Something failed on our side; the log has the details under the request id. */
            500: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Service unavailable. /problems/service-unavailable (Service unavailable): Redis or the result store (S3) is unreachable, no worker has its model loaded, or the API is shutting down; retry later. */
            503: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getMetrics: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The metrics in the Prometheus text exposition format, version 0.0.4 */
            200: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "text/plain": string;
                };
            };
            /** @description Internal error. /problems/internal (Internal error): Something failed on our side; the log has the details under the request id. */
            500: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getProblemType: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The last segment of a problem’s type, e.g. validation */
                kind: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The problem type */
            200: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        type: string;
                        title: string;
                        status: number;
                        description: string;
                    };
                };
            };
            /** @description Not found. /problems/not-found (Not found): No such route, job, image or preview (jobs and their files expire after the retention period). */
            404: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error. /problems/internal (Internal error): Something failed on our side; the log has the details under the request id. */
            500: {
                headers: {
                    "X-Request-Id": components["headers"]["X-Request-Id"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
}
