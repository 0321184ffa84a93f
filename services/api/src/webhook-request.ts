import type { JobWebhookTarget } from '@pixelflow/queue';
import { WEBHOOK_EVENTS, type WebhookRequest } from '@pixelflow/schemas';
import { checkWebhookUrl, WebhookUrlError } from '@pixelflow/webhooks';
import type { ApiConfig } from './config.ts';

// A webhook as POST /jobs names it, checked before the job exists: a URL the deliveries could
// never reach (not http(s), or resolving to an address the SSRF rule refuses) and a job nobody
// could sign deliveries for are refused now, as the client's mistake, rather than failing later.

/** The webhook as the job keeps it, or why it is refused and which field of the request is at fault. */
export type WebhookCheck = { target: JobWebhookTarget } | { refused: string; path: 'webhook' | 'webhook.url' };

/** `owner`: the submitting API key's name, '' for AUTH=off's one tenant (signed with WEBHOOK_SECRET). */
export async function checkWebhookRequest(webhook: WebhookRequest, owner: string, config: Pick<ApiConfig, 'WEBHOOK_SECRET' | 'WEBHOOK_ALLOW_PRIVATE'>): Promise<WebhookCheck> {
  // API keys get their secret when they are created; only the keyless tenant can lack one.
  if (owner === '' && config.WEBHOOK_SECRET === undefined) {
    return { path: 'webhook', refused: 'webhooks need a signing secret and this server has none: its operator sets WEBHOOK_SECRET (or turns AUTH on, where each API key has its own)' };
  }
  try {
    await checkWebhookUrl(webhook.url, config.WEBHOOK_ALLOW_PRIVATE);
  } catch (error) {
    if (error instanceof WebhookUrlError) return { path: 'webhook.url', refused: error.message };
    throw error;
  }
  return { target: { url: webhook.url, events: webhook.events ?? [...WEBHOOK_EVENTS] } };
}
