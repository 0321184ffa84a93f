import type { Job, JobImage, JobStatus } from '@pixelflow/schemas';
import { api, ApiProblem, ApiUnreachable, currentApiKey, imageDataUrl } from './api.ts';
import type { ConnectionBanner } from './connection.ts';
import { curlFor } from './curl.ts';
import { byId, h } from './dom.ts';
import { JobStream, type JobEvent } from './job-stream.ts';

// One job on screen: queue position while queued, then progress and the current stage, each
// stage's preview as it arrives (the cascade growing from coarse to full resolution), then the
// gallery. Events come from the job's SSE stream; a slower poll of GET /jobs/:id keeps the queue
// position current and finishes the job even if no stream can be held open.

// (Not the schemas' runtime list: importing it would bundle zod into the page.)
const FINISHED: ReadonlySet<JobStatus> = new Set<JobStatus>(['succeeded', 'failed', 'canceled']);
const POLL_QUEUED_MS = 1000;
const POLL_RUNNING_MS = 4000;

export class JobPanel {
  private readonly root = byId('job');
  private readonly status = byId('job-status');
  private readonly progress = byId<HTMLProgressElement>('job-progress');
  private readonly previews = byId<HTMLOListElement>('previews');
  private readonly gallery = byId<HTMLUListElement>('gallery');
  private readonly actions = byId('job-actions');
  private readonly parameters = byId('job-parameters');
  private readonly copyResult = byId('copy-result');
  private readonly cancelButton = byId<HTMLButtonElement>('cancel');
  private job: Job | null = null;
  private stream: JobStream | null = null;
  private poll: ReturnType<typeof setTimeout> | null = null;
  private detail = '';
  /** Counts the jobs shown, so that an image still on its way for an earlier one is dropped. */
  private shown = 0;

  private readonly connection: ConnectionBanner;
  private readonly changed: (job: Job) => void;

  constructor(connection: ConnectionBanner, changed: (job: Job) => void) {
    this.connection = connection;
    this.changed = changed;
    this.cancelButton.addEventListener('click', () => void this.cancel());
    byId('copy-curl').addEventListener('click', () => void this.copyCurl());
  }

  /** Shows a job just created (or opened) and follows it until it ends. */
  follow(job: Job): void {
    this.detach();
    this.shown++;
    this.previews.replaceChildren();
    this.gallery.replaceChildren();
    this.copyResult.textContent = '';
    this.detail = '';
    this.root.hidden = false;
    // What a job runs with never changes: written once, not at every progress event.
    this.parameters.textContent = JSON.stringify({ id: job.id, model: job.model, ...job.parameters }, null, 2);
    this.actions.hidden = false;
    this.update(job);
    for (const preview of job.previews) this.addPreview(preview.stage, preview.resolution, preview.url);
    if (!FINISHED.has(job.status)) {
      this.stream = new JobStream(job.id, { event: (e) => this.onEvent(e), connection: (state) => this.connection.set('stream', state === 'open') });
      this.schedulePoll();
    }
  }

  async open(id: string): Promise<void> {
    try {
      this.follow(await api.job(id));
    } catch (error) {
      this.detach();
      this.root.hidden = false;
      this.previews.replaceChildren();
      this.gallery.replaceChildren();
      this.actions.hidden = true;
      this.status.textContent = error instanceof ApiProblem ? `Job ${id}: ${error.problem.detail}` : `Job ${id}: ${(error as Error).message}`;
    }
  }

  private detach(): void {
    this.stream?.close();
    this.stream = null;
    this.connection.set('stream', true);
    if (this.poll !== null) clearTimeout(this.poll);
    this.poll = null;
  }

  private schedulePoll(): void {
    if (this.poll !== null) clearTimeout(this.poll);
    const job = this.job;
    if (!job || FINISHED.has(job.status)) return;
    this.poll = setTimeout(() => void this.refresh(job.id), job.status === 'queued' ? POLL_QUEUED_MS : POLL_RUNNING_MS);
  }

  private async refresh(id: string): Promise<void> {
    try {
      const job = await api.job(id);
      this.connection.set('requests', true);
      if (this.job?.id !== id) return;
      // Keep the finer progress of the event stream; take everything else from the API.
      this.update(job.status === 'running' && this.job.progress && job.progress && this.job.progress.step > job.progress.step ? { ...job, progress: this.job.progress } : job);
      if (FINISHED.has(job.status)) this.finish(job);
    } catch (error) {
      if (error instanceof ApiUnreachable) this.connection.set('requests', false);
      if (error instanceof ApiProblem && error.problem.status === 404 && this.job?.id === id) {
        // Deleted after its retention period: nothing left to follow.
        this.detach();
        this.cancelButton.disabled = true;
        this.status.textContent = `Job ${id}: ${error.problem.detail}`;
        return;
      }
    }
    this.schedulePoll();
  }

  private onEvent(event: JobEvent): void {
    const job = this.job;
    if (!job) return;
    switch (event.event) {
      case 'queued':
        // Also sent again when a started job goes back to the queue (its worker stopped or died):
        // the stopped attempt's progress and previews are gone, and the next attempt starts over.
        if (job.status === 'running') this.previews.replaceChildren();
        this.update({ ...job, status: 'queued', progress: null, previews: [], queue_position: event.data.position ?? job.queue_position });
        break;
      case 'started':
        this.update({ ...job, status: 'running', queue_position: null });
        break;
      case 'progress':
        this.update({ ...job, status: 'running', queue_position: null, progress: event.data });
        break;
      case 'stage':
        this.addPreview(event.data.stage, event.data.resolution, event.data.png_base64 ? `data:image/png;base64,${event.data.png_base64}` : event.data.url);
        break;
      case 'succeeded':
        this.update({ ...job, status: 'succeeded', result: { images: event.data.images }, eta_seconds: null });
        void this.refresh(job.id);
        break;
      case 'failed':
        this.update({ ...job, status: 'failed', error: event.data.error });
        void this.refresh(job.id);
        break;
      case 'canceled':
        this.detail = event.data.reason;
        this.update({ ...job, status: 'canceled' });
        void this.refresh(job.id);
        break;
    }
  }

  private finish(job: Job): void {
    this.detach();
    this.update(job);
  }

  private update(job: Job): void {
    this.job = job;
    this.cancelButton.disabled = FINISHED.has(job.status);
    const p = job.progress;
    switch (job.status) {
      case 'queued':
        this.progress.removeAttribute('value');
        this.status.textContent = `Queued${job.queue_position === null ? '' : `, position ${job.queue_position}`}${job.eta_seconds === null ? '' : ` (about ${Math.ceil(job.eta_seconds)} s)`}`;
        break;
      case 'running':
        this.progress.value = p?.fraction ?? 0;
        this.status.textContent = p
          ? `Running: stage ${p.stage + 1} of ${p.stages}, step ${p.step} of ${p.steps_total} (${Math.round(p.fraction * 100)}%)`
          : 'Running';
        break;
      case 'succeeded':
        this.progress.value = 1;
        this.status.textContent = `Done: ${job.result?.images.length ?? 0} images${elapsed(job)}`;
        this.showImages(job, job.result?.images ?? []);
        break;
      case 'failed':
        this.progress.value = 0;
        this.status.textContent = `Failed: ${job.error?.message ?? 'unknown error'}`;
        break;
      case 'canceled':
        this.status.textContent = `Canceled${this.detail ? ` (${this.detail})` : ''}`;
        break;
    }
    this.changed(job);
  }

  private addPreview(stage: number, resolution: number, src: string): void {
    if (this.previews.querySelector(`[data-stage="${stage}"]`)) return;
    const item = h(
      'li',
      { 'data-stage': stage, class: 'preview' },
      h('figure', {}, this.image(src, { alt: `Stage ${stage + 1} preview, ${resolution}×${resolution}`, width: 96, height: 96 }), h('figcaption', {}, `Stage ${stage + 1} · ${resolution}×${resolution}`)),
    );
    const after = [...this.previews.children].find((li) => Number((li as HTMLElement).dataset['stage']) > stage);
    this.previews.insertBefore(item, after ?? null);
  }

  private showImages(job: Job, images: JobImage[]): void {
    if (this.gallery.children.length === images.length) return;
    const p = job.parameters;
    const settings = p.solver === 'euler' ? `CFG ${p.cfg_scale}, steps ${p.steps.join(',')}, shift ${p.noise_shift}, Euler` : `CFG ${p.cfg_scale}, Dopri5`;
    this.gallery.replaceChildren(
      ...images.map((image, i) => {
        const seed = (p.seed + i) % 2 ** 32;
        const name = `${job.model}-${p.class_name.replace(/[^\w-]+/g, '_')}-seed${seed}.png`;
        const download = h('a', { download: name }, 'Download PNG');
        return h(
          'li',
          {},
          h(
            'figure',
            {},
            this.image(image.url, { alt: `${p.class_name}, seed ${seed}`, width: 192, height: 192, 'data-width': image.width, 'data-height': image.height }, download),
            h('figcaption', {}, h('span', {}, `${p.class_name} · seed ${seed}`), h('span', { class: 'hint' }, settings), download),
          ),
        );
      }),
    );
  }

  /**
   * An <img> of an API image. With a key it is fetched with the Authorization header and shown
   * as a data: URL (an <img src> cannot send a header, and a key in a URL would end up in logs
   * and history); the Download link, if any, points at the same data.
   */
  private image(url: string, attributes: Record<string, string | number>, link?: HTMLAnchorElement): HTMLImageElement {
    const img = h('img', attributes);
    if (url.startsWith('data:') || !currentApiKey()) {
      img.src = url;
      if (link) link.href = url;
      return img;
    }
    const shown = this.shown;
    imageDataUrl(url).then(
      (dataUrl) => {
        // Another job replaced this one while the image was on its way: drop it.
        if (shown !== this.shown) return;
        img.src = dataUrl;
        if (link) link.href = dataUrl;
      },
      (error: unknown) => {
        img.alt = `${img.alt} (not loaded: ${(error as Error).message})`;
      },
    );
    return img;
  }

  private async cancel(): Promise<void> {
    const job = this.job;
    if (!job) return;
    this.cancelButton.disabled = true;
    try {
      const after = await api.cancel(job.id);
      // The stream's `canceled` event can arrive before this answer: the newer state wins.
      if (this.job?.id !== job.id || FINISHED.has(this.job.status)) return;
      if (after.status === 'canceled') this.finish(after);
      else this.status.textContent = 'Canceling…'; // running: it stops within one model call
    } catch (error) {
      this.cancelButton.disabled = false;
      this.status.textContent = error instanceof ApiProblem ? `Cannot cancel: ${error.problem.detail}` : `Cannot cancel: ${(error as Error).message}`;
    }
  }

  private async copyCurl(): Promise<void> {
    if (!this.job) return;
    const command = curlFor(location.origin, this.job.parameters, currentApiKey() !== undefined);
    try {
      await navigator.clipboard.writeText(command);
      this.copyResult.textContent = 'Copied.';
    } catch {
      // No clipboard (an insecure origin, or permission refused): show it to copy by hand.
      this.copyResult.replaceChildren(h('code', { class: 'curl' }, command));
    }
  }
}

function elapsed(job: Job): string {
  if (!job.started_at || !job.finished_at) return '';
  const seconds = (Date.parse(job.finished_at) - Date.parse(job.started_at)) / 1000;
  return ` in ${seconds.toFixed(1)} s`;
}
