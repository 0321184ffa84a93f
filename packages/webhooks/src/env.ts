import { intVar } from '@pixelflow/schemas';
import { z } from 'zod';
import { DEFAULT_SCHEDULE } from './schedule.ts';
import { secretProblem } from './signing.ts';
import type { WebhookSettings } from './delivery.ts';

// The webhook variables, one fragment for the API's schema (the API checks webhook URLs and runs
// the deliveries), documented in docs/webhooks.md and docs/operators/running.md's table.

export const WebhookEnv = z.object({
  /** Signs the deliveries of the AUTH=off tenant's jobs (API keys carry their own); unset, such jobs may not name a webhook. */
  WEBHOOK_SECRET: z
    .string()
    .refine((secret) => secretProblem(secret) === null, { error: (issue) => secretProblem(String(issue.input)) ?? 'is not a whsec_ secret' })
    .optional(),
  /** true lets webhooks reach loopback, private and link-local addresses: for tests and closed networks only. */
  WEBHOOK_ALLOW_PRIVATE: z
    .enum(['true', 'false'], { error: 'must be true or false' })
    .default('false')
    .transform((v) => v === 'true'),
  /** One attempt, connection to answer. */
  WEBHOOK_TIMEOUT_MS: intVar(100, 120_000, 10_000),
  /** Attempts in all; with the backoff variables, how long a receiver may be down (the defaults: 25 h 25 min). */
  WEBHOOK_ATTEMPTS: intVar(1, 1000, DEFAULT_SCHEDULE.attempts),
  WEBHOOK_BACKOFF_MS: intVar(10, 86_400_000, DEFAULT_SCHEDULE.backoffMs),
  WEBHOOK_BACKOFF_MAX_MS: intVar(10, 86_400_000, DEFAULT_SCHEDULE.backoffMaxMs),
});

export type WebhookEnvSettings = z.output<typeof WebhookEnv>;

/** How often the outbox is read: the most an ending waits before its event is queued. */
const POLL_MS = 500;
/** Deliveries one API process attempts at once: waiting on receivers costs it little. */
const CONCURRENCY = 16;

export function webhookSettings(config: WebhookEnvSettings): WebhookSettings {
  return {
    allowPrivate: config.WEBHOOK_ALLOW_PRIVATE,
    timeoutMs: config.WEBHOOK_TIMEOUT_MS,
    attempts: config.WEBHOOK_ATTEMPTS,
    backoffMs: config.WEBHOOK_BACKOFF_MS,
    backoffMaxMs: config.WEBHOOK_BACKOFF_MAX_MS,
    pollMs: POLL_MS,
    concurrency: CONCURRENCY,
  };
}
