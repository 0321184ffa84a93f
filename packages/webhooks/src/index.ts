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
