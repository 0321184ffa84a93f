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

  remember(job: Job): void {
    const entry: RecentJob = { id: job.id, class_name: job.parameters.class_name, num_images: job.parameters.num_images, created_at: job.created_at };
    this.save([entry, ...load().filter((j) => j.id !== job.id)].slice(0, KEEP));
  }

  async render(): Promise<void> {
    const jobs = load();
    this.empty.hidden = jobs.length > 0;
    const rows = jobs.map((job) => {
      const status = h('span', { class: 'badge' }, '…');
      const open = h('button', { type: 'button', class: 'link', 'data-job': job.id }, `${job.class_name} × ${job.num_images}`);
      open.addEventListener('click', () => this.open(job.id));
      const remove = h('button', { type: 'button', class: 'link subtle', 'aria-label': `Forget job ${job.id}` }, 'forget');
      remove.addEventListener('click', () => {
        this.save(load().filter((j) => j.id !== job.id));
        void this.render();
      });
      const when = new Date(job.created_at);
      const row = h('li', {}, open, ' ', status, ' ', h('time', { datetime: job.created_at }, Number.isNaN(when.getTime()) ? '' : when.toLocaleTimeString()), ' ', remove);
      api.job(job.id).then(
        (current) => void (status.textContent = current.status),
        (error: unknown) => void (status.textContent = error instanceof ApiProblem && error.problem.status === 404 ? 'expired' : 'unknown'),
      );
      return row;
    });
    this.list.replaceChildren(...rows);
  }

  private save(jobs: RecentJob[]): void {
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify(jobs));
    } catch {
      // Private mode or a full quota: the list is a convenience, the jobs are safe in the API.
    }
  }
}
