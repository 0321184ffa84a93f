import { z } from 'zod';
import { GenerationRequest } from './generation.ts';

// A job's webhook: what POST /jobs may name beside the generation parameters (never inside them:
// those go into every PNG's metadata, and a URL has no business there), and how its deliveries
// went, as GET /jobs/{id} shows them. Delivery itself is @pixelflow/webhooks'.

export const WEBHOOK_EVENTS = ['job.succeeded', 'job.failed', 'job.canceled'] as const;
export const WebhookEvent = z.enum(WEBHOOK_EVENTS, { error: `must be one of ${WEBHOOK_EVENTS.join(', ')}` });
export type WebhookEvent = z.infer<typeof WebhookEvent>;

export const WebhookRequest = z
  .strictObject({
    url: z.string().max(2048, { error: 'must be at most 2048 characters' }).meta({
      description: 'Where to POST the events: http(s), no credentials, and not a loopback, private, link-local or metadata address (unless the operator allows them)',
    }),
    events: z
      .array(WebhookEvent)
      .min(1, { error: 'must name at least one event' })
      .max(WEBHOOK_EVENTS.length)
      .optional()
      .meta({ description: 'The events to deliver; all three when absent' }),
  })
  .meta({ id: 'WebhookRequest', description: 'A webhook told when the job ends, signed as Standard Webhooks say (see docs/webhooks.md)' });
export type WebhookRequest = z.infer<typeof WebhookRequest>;

/** The body of POST /jobs: the generation parameters and, beside them, an optional webhook. */
export const JobSubmission = GenerationRequest.extend({ webhook: WebhookRequest.optional() }).meta({
  description: 'The parameters of one generation: a class and, optionally, how to sample it; and, beside them, a webhook to tell when the job ends',
});
export type JobSubmission = z.infer<typeof JobSubmission>;

export const WebhookDeliveryStatus = z.enum(['pending', 'delivered', 'failed']).meta({
  description: 'pending: not delivered yet (attempts left); delivered: the receiver answered 2xx; failed: every attempt failed',
});

export const WebhookDelivery = z
  .object({
    event: WebhookEvent,
    webhook_id: z.string().meta({ description: 'The webhook-id header, the same on every attempt' }),
    status: WebhookDeliveryStatus,
    attempts: z.int().min(0),
    last_status_code: z.int().nullable().meta({ description: "The receiver's status code at the last attempt; null when it gave none" }),
    last_error: z.string().nullable(),
    delivered_at: z.iso.datetime().nullable(),
  })
  .meta({ id: 'WebhookDelivery' });
export type WebhookDelivery = z.infer<typeof WebhookDelivery>;

export const JobWebhook = z
  .object({
    url: z.string(),
    events: z.array(WebhookEvent),
    deliveries: z.array(WebhookDelivery),
  })
  .meta({ id: 'JobWebhook', description: "The job's webhook and its deliveries (one per event that happened)" });
export type JobWebhook = z.infer<typeof JobWebhook>;
