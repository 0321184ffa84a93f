export { secretProblem, signedHeaders, type SignedHeaders } from './signing.ts';
export {
  allowedAddresses,
  checkWebhookUrl,
  hostOf,
  isForbiddenAddress,
  parsedWebhookUrl,
  systemResolve,
  WebhookUrlError,
  type Resolve,
} from './address-policy.ts';
export { guardedLookup, postWebhook, type AttemptResult, type PostOptions } from './post.ts';
export { DEFAULT_SCHEDULE, retryDelayMs, retrySpanMs, type RetrySchedule } from './schedule.ts';
export { WebhookDeliveries, webhookIdOf, type SecretFor, type ViewOf, type WebhookDeliveryOptions, type WebhookLog, type WebhookSettings } from './delivery.ts';
export { WebhookEnv, webhookSettings, type WebhookEnvSettings } from './env.ts';
