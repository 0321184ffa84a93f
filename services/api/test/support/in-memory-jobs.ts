import { etaSeconds, jobShape, queueWaitSeconds, remainingShape, retryAfterSecondsWhenFull } from '@pixelflow/queue';
import type { CancelOutcome, JobRecord, JobRequest, JobService, JobSnapshot, QueueDepth, StoredEvent, Submission, Throughput, WorkerHeartbeat } from '@pixelflow/queue';
import type { JobEventName, JobEventPayload, JobImage } from '@pixelflow/schemas';

// A job service in memory, for route tests: the JobService contract without
// Redis, plus the controls a test needs to put a job where it wants it (what a
// worker would do). Estimates use the package's own ETA arithmetic.

export class InMemoryJobService implements JobService {
  readonly jobs = new Map<string, JobRecord>();
  /** Waiting job ids, next first. */
  private readonly waiting: string[] = [];
  private readonly jobEvents = new Map<string, StoredEvent[]>();
  private measured: Throughput | null = null;
  private nextId = 1;
  private nextEventId = 1;
  /** Workers whose heartbeats are alive; set by tests. */
  workers: WorkerHeartbeat[] = [];
  /** Whether the job store counts as reachable; tests turn it off. */
  reachable = true;
  /** Hears every appended event (the fake hub's wake-up). */
  onEvent: (jobId: string) => void = () => undefined;

  async submit(request: JobRequest, queueCap: number): Promise<Submission> {
    const depth = await this.depth();
    const inQueue = depth.waiting + depth.active;
    if (inQueue >= queueCap) {
      // As the Redis service answers (eta.ts): how long the queue takes to drain, and whether a worker is alive.
      const workersAlive = this.workers.filter((worker) => worker.state !== 'stopping').length;
      const waiting = { jobs: this.waiting.map((id) => jobShape(this.get(id).parameters)), beyondWork: 0 };
      const waitSeconds = this.measured === null ? null : queueWaitSeconds({ running: this.running().map(remainingShape), waiting }, this.measured);
      return { accepted: false, inQueue, retryAfterSeconds: retryAfterSecondsWhenFull({ waitSeconds, workersAlive }), workersAlive };
    }
    const id = `j${(this.nextId++).toString(16).padStart(24, '0')}`;
    this.jobs.set(id, newRecord(id, request));
    this.waiting.push(id);
    this.append(id, 'queued', { position: this.waiting.length });
    return { accepted: true, id, position: this.waiting.length };
  }

  async snapshot(id: string): Promise<JobSnapshot | null> {
    const record = this.jobs.get(id);
    if (!record) return null;
    const index = this.waiting.indexOf(id);
    const queuePosition = index === -1 ? null : index + 1;
    const measured = this.measured;
    if (measured === null || (record.status !== 'queued' && record.status !== 'running')) return { record, queuePosition, etaSeconds: null };
    const others = this.running().filter((job) => job.id !== id);
    const shapes = (ids: string[]) => ids.map((waiting) => jobShape(this.get(waiting).parameters));
    const eta = etaSeconds({
      own: remainingShape(record),
      running: record.status === 'running',
      othersRunning: others.map(remainingShape),
      ahead: { jobs: shapes(this.waiting.slice(0, Math.max(0, index))), beyondWork: 0 },
      behind: shapes(this.waiting.slice(index + 1)),
      concurrency: measured.concurrency,
      secondsPerImageStep: measured.secondsPerImageStep,
    });
    return { record, queuePosition, etaSeconds: eta };
  }

  async record(id: string): Promise<JobRecord | null> {
    return this.jobs.get(id) ?? null;
  }

  async exists(id: string): Promise<boolean> {
    return this.jobs.has(id);
  }

  async events(id: string, afterId?: string, count = 1000): Promise<StoredEvent[]> {
    const all = this.jobEvents.get(id) ?? [];
    const after = afterId === undefined ? 0 : all.findIndex((event) => event.id === afterId) + 1;
    return all.slice(after, after + count);
  }

  async cancel(id: string): Promise<CancelOutcome> {
    const record = this.jobs.get(id);
    if (!record) return { outcome: 'not-found' };
    if (record.status === 'queued') {
      this.end(record, { status: 'canceled' });
      this.append(id, 'canceled', { reason: 'canceled by request' });
      return { outcome: 'canceled' };
    }
    if (record.status === 'running') {
      record.cancelRequested = true;
      return { outcome: 'stopping' };
    }
    return { outcome: 'finished', status: record.status };
  }

  async depth(): Promise<QueueDepth> {
    return { waiting: this.waiting.length, active: this.running().length };
  }

  async recordThroughput(throughput: Throughput): Promise<void> {
    this.measured = throughput;
  }

  async throughput(): Promise<Throughput | null> {
    return this.measured;
  }

  connected(): boolean {
    return this.reachable;
  }

  async ping(): Promise<void> {
    if (!this.reachable) throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
  }

  async liveWorkers(): Promise<WorkerHeartbeat[]> {
    return this.workers;
  }

  /** The record as the store keeps it (what a worker reads). */
  recordOf(id: string): JobRecord {
    return this.get(id);
  }

  /** A worker takes the job (as BullMQ and JobRecords.start would). */
  start(id: string): void {
    const record = this.get(id);
    this.waiting.splice(this.waiting.indexOf(id), 1);
    Object.assign(record, { status: 'running', attempt: record.attempt + 1, startedAt: new Date(), progress: null, previews: [] });
    this.append(id, 'started', { attempt: record.attempt, steps_total: record.parameters.steps.reduce((a, b) => a + b, 0) });
  }

  /** A worker ends a stage of the job (as JobRecords.addPreview would). */
  endStage(id: string, stage: number, resolution: number): void {
    const record = this.get(id);
    const preview = { stage, resolution, url: `/jobs/${id}/previews/${stage}` };
    record.previews.push(preview);
    this.append(id, 'stage', { ...preview, stages: stage + 1 });
  }

  /** A worker finishes the job with these images. */
  succeed(id: string, images: JobImage[]): void {
    const record = this.get(id);
    this.end(record, { status: 'succeeded', images });
    this.append(id, 'succeeded', { images });
  }

  private end(record: JobRecord, ending: Partial<JobRecord>): void {
    const index = this.waiting.indexOf(record.id);
    if (index !== -1) this.waiting.splice(index, 1);
    const finishedAt = new Date();
    Object.assign(record, ending, { finishedAt, expiresAt: new Date(finishedAt.getTime() + 3_600_000) });
  }

  private append<N extends JobEventName>(id: string, name: N, data: JobEventPayload<N>): void {
    const list = this.jobEvents.get(id) ?? [];
    list.push({ id: `${this.nextEventId++}-0`, name, data });
    this.jobEvents.set(id, list);
    this.onEvent(id);
  }

  private running(): JobRecord[] {
    return [...this.jobs.values()].filter((job) => job.status === 'running');
  }

  private get(id: string): JobRecord {
    const record = this.jobs.get(id);
    if (!record) throw new Error(`no job ${id}`);
    return record;
  }
}

function newRecord(id: string, request: JobRequest): JobRecord {
  return {
    id,
    status: 'queued',
    model: request.model,
    parameters: request.parameters,
    attempt: 0,
    createdAt: new Date(),
    startedAt: null,
    finishedAt: null,
    expiresAt: null,
    progress: null,
    previews: [],
    images: null,
    error: null,
    cancelRequested: false,
    requestId: request.requestId ?? null,
    webhook: null,
    webhookDeliveries: [],
    owner: request.owner ?? '',
  };
}
