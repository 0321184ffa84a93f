import type { ModelInfo } from '@pixelflow/schemas';
import { api, ApiProblem, ApiUnreachable } from './api.ts';
import { ConnectionBanner } from './connection.ts';
import { byId } from './dom.ts';
import { GenerationForm } from './generation-form.ts';
import { JobPanel } from './job-panel.ts';
import { KeyField } from './key-field.ts';
import { RecentJobs } from './recent-jobs.ts';

// The page: wait for /readyz, load the model and its classes, then generate. Everything goes
// through the public API, so what works here works for every client.

const READY_POLL_MS = 1000;
const HEALTH_POLL_MS = 10_000;

// First: the stored key (AUTH=on) is in use before any request, the linked job's included.
const keyField = new KeyField();
const connection = new ConnectionBanner();
const form = new GenerationForm();
const statusText = byId('model-status-text');
const statusBox = byId('model-status');
const generateButton = byId<HTMLButtonElement>('generate');

const recent = new RecentJobs((id) => void openJob(id));
const panel = new JobPanel(connection, (job) => {
  const active = job.status === 'queued' || job.status === 'running';
  generateButton.textContent = active ? 'Generate another' : 'Generate';
  recent.showStatus(job.id, job.status);
});

function describe(model: ModelInfo): string {
  const stages = model.stages.map((s) => s.resolution).join(' → ');
  return `${model.name} · ${model.resolution}×${model.resolution} · ${model.stages.length} stages (${stages}) · ${model.provider ?? 'no worker'}`;
}

async function waitUntilReady(): Promise<void> {
  for (;;) {
    try {
      await api.readiness();
      connection.set('requests', true);
      return;
    } catch (error) {
      connection.set('requests', !(error instanceof ApiUnreachable));
      statusText.textContent = error instanceof ApiProblem ? `Loading: ${error.problem.detail}` : 'Waiting for the server…';
    }
    await new Promise((resolve) => setTimeout(resolve, READY_POLL_MS));
  }
}

/** After start-up: say so when the model stops being served (jobs still queue meanwhile). */
async function watchHealth(): Promise<void> {
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, HEALTH_POLL_MS));
    try {
      const [model] = (await api.models()).models;
      connection.set('requests', true);
      if (!model) continue;
      statusBox.dataset['state'] = model.status;
      statusText.textContent = model.status === 'ready' ? describe(model) : `${model.name}: ${model.status === 'loading' ? 'a worker is loading the model' : 'no worker is running; jobs wait in the queue'}`;
    } catch (error) {
      if (error instanceof ApiUnreachable) connection.set('requests', false);
    }
  }
}

async function openJob(id: string): Promise<void> {
  history.replaceState(null, '', `#job=${encodeURIComponent(id)}`);
  await panel.open(id);
}

form.form.addEventListener('submit', (event) => {
  event.preventDefault();
  void (async () => {
    form.clearErrors();
    generateButton.disabled = true;
    try {
      const job = await api.createJob(form.request());
      connection.set('requests', true);
      recent.remember(job);
      history.replaceState(null, '', `#job=${encodeURIComponent(job.id)}`);
      panel.follow(job);
    } catch (error) {
      if (error instanceof ApiProblem) form.showProblem(error.problem);
      else {
        connection.set('requests', false);
        form.showError((error as Error).message);
      }
    } finally {
      generateButton.disabled = false;
    }
  })();
});

/** `#job=<id>` opens that job: links to a job can be shared and bookmarked. */
function jobInHash(): string | null {
  const hashed = /^#job=(.+)$/.exec(location.hash);
  return hashed?.[1] ? decodeURIComponent(hashed[1]) : null;
}
window.addEventListener('hashchange', () => {
  const id = jobInHash();
  if (id) void openJob(id);
});

async function start(): Promise<void> {
  recent.render();
  const linked = jobInHash();
  if (linked) void openJob(linked);
  await waitUntilReady();
  const [{ models }, { classes }] = await keyField.authorized(() => Promise.all([api.models(), api.classes()]));
  const model = models[0];
  if (!model) throw new Error('the API serves no model');
  form.setModel(model, classes);
  statusBox.dataset['state'] = 'ready';
  statusText.textContent = describe(model);
  form.setEnabled(true);
  document.body.dataset['ready'] = 'true';
  void watchHealth();
}

start().catch((error: unknown) => {
  statusBox.dataset['state'] = 'unavailable';
  statusText.textContent = `The page could not start: ${(error as Error).message}. Reload to try again.`;
});
