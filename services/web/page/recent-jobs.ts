import type { Job } from '@pixelflow/schemas';
import { api, ApiProblem } from './api.ts';
import { byId, h } from './dom.ts';

// Jobs started in this browser, newest first, kept in localStorage (ids only: the API holds the
// jobs) and re-opened from the API by id. A job the API no longer has (past its retention) is
// shown as expired and can be removed.

const STORAGE_KEY = 'pixelflow:recent-jobs';
const KEEP = 20;

interface RecentJob {
  id: string;
  class_name: string;
  num_images: number;
  created_at: string;
}

function load(): RecentJob[] {
  try {
    const parsed: unknown = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? '[]');
    return Array.isArray(parsed) ? parsed.filter((j): j is RecentJob => typeof j?.id === 'string') : [];
  } catch {
    return [];
  }
}

export class RecentJobs {
  private readonly list = byId<HTMLUListElement>('recent-jobs');
  private readonly empty = byId('recent-empty');

  private readonly open: (id: string) => void;

  constructor(open: (id: string) => void) {
    this.open = open;
  }

  /** Lists a job just created at the top; the other rows stay as they are. */
  remember(job: Job): void {
    const entry: RecentJob = { id: job.id, class_name: job.parameters.class_name, num_images: job.parameters.num_images, created_at: job.created_at };
    this.save([entry, ...load().filter((j) => j.id !== job.id)].slice(0, KEEP));
    this.rowOf(job.id)?.remove();
    this.list.prepend(this.row(entry, job.status));
    while (this.list.children.length > KEEP) this.list.lastElementChild?.remove();
    this.empty.hidden = true;
  }

  /** The status of a job the page follows anyway (no request of its own). */
  showStatus(id: string, status: string): void {
    const badge = this.rowOf(id)?.querySelector('.badge');
    if (badge) badge.textContent = status;
  }

  /** The whole list, each job's status asked of the API once. */
  render(): void {
    const jobs = load();
    this.empty.hidden = jobs.length > 0;
    this.list.replaceChildren(...jobs.map((job) => this.row(job, null)));
    for (const job of jobs) {
      api.job(job.id).then(
        (current) => this.showStatus(job.id, current.status),
        (error: unknown) => this.showStatus(job.id, error instanceof ApiProblem && error.problem.status === 404 ? 'expired' : 'unknown'),
      );
    }
  }

  private rowOf(id: string): HTMLLIElement | null {
    return this.list.querySelector<HTMLLIElement>(`li[data-job="${CSS.escape(id)}"]`);
  }

  private row(job: RecentJob, status: string | null): HTMLLIElement {
    const open = h('button', { type: 'button', class: 'link', 'data-job': job.id }, `${job.class_name} × ${job.num_images}`);
    open.addEventListener('click', () => this.open(job.id));
    const remove = h('button', { type: 'button', class: 'link subtle', 'aria-label': `Forget job ${job.id}` }, 'forget');
    const when = new Date(job.created_at);
    const row = h('li', { 'data-job': job.id }, open, ' ', h('span', { class: 'badge' }, status ?? '…'), ' ', h('time', { datetime: job.created_at }, Number.isNaN(when.getTime()) ? '' : when.toLocaleTimeString()), ' ', remove);
    remove.addEventListener('click', () => {
      this.save(load().filter((j) => j.id !== job.id));
      row.remove();
      this.empty.hidden = this.list.children.length > 0;
    });
    return row;
  }

  private save(jobs: RecentJob[]): void {
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify(jobs));
    } catch {
      // Private mode or a full quota: the list is a convenience, the jobs are safe in the API.
    }
  }
}
