import type { JobSnapshot } from '@pixelflow/queue';
import type { Job } from '@pixelflow/schemas';

// The job resource of GET /jobs/:id from the job service's snapshot. Only the
// presentation is decided here; position and ETA come from the service
// (@pixelflow/queue's eta.ts is the one place that estimates).

export function jobView({ record, queuePosition, etaSeconds }: JobSnapshot): Job {
  return {
    id: record.id,
    status: record.status,
    model: record.model,
    parameters: record.parameters,
    progress: record.progress,
    queue_position: queuePosition,
    // Tenths of a second: finer would be noise between two polls.
    eta_seconds: etaSeconds === null ? null : Math.round(etaSeconds * 10) / 10,
    created_at: record.createdAt.toISOString(),
    started_at: record.startedAt?.toISOString() ?? null,
    finished_at: record.finishedAt?.toISOString() ?? null,
    expires_at: record.expiresAt?.toISOString() ?? null,
    previews: record.previews,
    result: record.images === null ? null : { images: record.images },
    error: record.error,
    webhook: record.webhook === null ? null : { url: record.webhook.url, events: record.webhook.events, deliveries: record.webhookDeliveries },
  };
}
