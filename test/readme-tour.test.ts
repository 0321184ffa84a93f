import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO, startService, type TestService } from './service/support.ts';

// The README's five-minute tour is run as a reader would run it, so the front door cannot rot:
// the shell block after `<!-- tour ... -->` goes to bash as it is written, with only the address
// of `pnpm start` (http://127.0.0.1:8080) replaced by a live service's (real API, real worker on
// the tiny model, real Redis). The tour names classes by index, which the tiny model ("class 0"
// ..) and the embedded one ("digit 0" ..) both have. Each step (a paragraph of the block) must
// exit 0 and print what its comment promises.

const README_ADDRESS = 'http://127.0.0.1:8080';
const JOB_ID = /j[0-9a-f]{24}/;

/** The shell blocks that follow a `<!-- tour ... -->` comment in the README. */
function tourBlocks(markdown: string): string[] {
  const lines = markdown.split('\n');
  const blocks: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^<!--\s*tour\b.*-->\s*$/.test(lines[i]!)) continue;
    let start = i + 1;
    while (lines[start]?.trim() === '') start++;
    if (!/^```(sh|bash)\s*$/.test(lines[start] ?? '')) throw new Error(`README.md line ${i + 1}: a tour comment must be followed by a sh or bash code block`);
    const end = lines.findIndex((line, n) => n > start && line.startsWith('```'));
    if (end < 0) throw new Error(`README.md line ${start + 1}: the tour's code block never closes`);
    blocks.push(lines.slice(start + 1, end).join('\n'));
  }
  return blocks;
}

interface Step {
  /** The step's source: one paragraph of the block. */
  source: string;
  output: string;
}

/**
 * Runs `block` in one bash (shell variables carry from step to step as they do for a reader)
 * in `cwd`, with a marker printed before each paragraph, and returns each paragraph's output.
 * `set -euo pipefail` stops at the first step that fails, and says which.
 */
async function runTour(block: string, cwd: string): Promise<{ steps: Step[]; status: number | null; output: string }> {
  const paragraphs = block.split(/\n\s*\n/).map((p) => p.trim()).filter((p) => p !== '');
  const script = ['set -euo pipefail', 'exec 2>&1', ...paragraphs.flatMap((p, n) => [`printf '\\n@@tour-step ${n}@@\\n'`, p])].join('\n');
  const child = spawn('bash', ['-c', script], { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const status = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  clearTimeout(timer);
  const parts = output.split(/\n@@tour-step (\d+)@@\n/);
  const steps = paragraphs.map((source) => ({ source, output: '' }));
  for (let i = 1; i < parts.length; i += 2) steps[Number(parts[i])]!.output = parts[i + 1] ?? '';
  return { steps, status, output };
}

/** The one step whose source matches `pattern` (the tour must have it). */
function stepOf(steps: Step[], pattern: RegExp, what: string): Step {
  const found = steps.filter((step) => pattern.test(step.source));
  expect(found.length, `the README tour has one step that ${what} (${pattern})`).toBe(1);
  return found[0]!;
}

/** The `event:` names of an SSE text, in order. */
function eventNames(text: string): string[] {
  return [...text.matchAll(/^event: (\S+)$/gm)].map((match) => match[1]!);
}

let service: TestService;
let cwd: string;
let readme: string;

beforeAll(async () => {
  readme = await readFile(join(REPO, 'README.md'), 'utf8');
  service = await startService({ worker: true });
  cwd = await mkdtemp(join(tmpdir(), 'pixelflow-readme-tour-'));
});
afterAll(async () => {
  await service?.stop();
  if (cwd) await rm(cwd, { recursive: true, force: true });
});

describe('the README tour', () => {
  it('is one marked shell block, written for the address `pnpm start` serves', () => {
    const blocks = tourBlocks(readme);
    expect(blocks).toHaveLength(1);
    expect(blocks[0]).toContain(README_ADDRESS);
    // The two one-line commands stay near the top, before the tour.
    const tourAt = readme.indexOf('<!-- tour');
    expect(readme.indexOf('pnpm install && pnpm test')).toBeGreaterThan(0);
    expect(readme.indexOf('pnpm install && pnpm test')).toBeLessThan(tourAt);
    expect(readme.indexOf('pnpm install && pnpm start')).toBeLessThan(tourAt);
  });

  it('runs against a live service: classes, a job created, polled, watched to the end, its image fetched, another canceled', { timeout: 120_000 }, async () => {
    const [block] = tourBlocks(readme);
    const { steps, status, output } = await runTour(block!.replaceAll(README_ADDRESS, service.url), cwd);
    expect(status, `the tour stopped with status ${status}:\n${output}`).toBe(0);

    // The classes: the served model's, by index and name.
    const classes = (await (await fetch(`${service.url}/models/classes`)).json()) as { classes: { index: number; name: string }[] };
    const listed = stepOf(steps, /\/models\/classes/, 'lists the classes');
    expect(JSON.parse(listed.output)).toEqual(classes);

    // Created: 202, Location naming the job, the job queued with the asked parameters.
    const created = stepOf(steps, /-X POST \S*\/jobs\b[^]*"seed": 42/, 'creates the job the tour follows');
    expect(created.output).toMatch(/^HTTP\/1\.1 202 Accepted\r?$/m);
    const location = /^location: (\/jobs\/(j[0-9a-f]{24}))\r?$/im.exec(created.output);
    expect(location, created.output).not.toBeNull();
    const id = location![2]!;
    expect(created.output).toContain(`{"id":"${id}","status":"queued"`);
    expect(created.output).toContain(`"class_label":7,"class_name":"${classes.classes[7]!.name}","num_images":4,"seed":42`);

    // Polled: the same job, in whatever state it had reached.
    const polled = stepOf(steps, /curl -s \$API\/jobs\/\$id( -w '\\n')?\s*$/, 'polls the job');
    const job = JSON.parse(polled.output) as { id: string; status: string };
    expect(job.id).toBe(id);
    expect(['queued', 'running', 'succeeded']).toContain(job.status);

    // Watched: from queued to succeeded, every event with an id, the stream closed after the end.
    const watched = stepOf(steps, /\/jobs\/\$id\/events/, 'watches the job');
    const names = eventNames(watched.output);
    expect(names[0]).toBe('queued');
    expect(names).toContain('started');
    expect(names.filter((name) => name === 'stage')).toHaveLength(4);
    expect(names.at(-1)).toBe('succeeded');
    expect(watched.output).toMatch(/^retry: \d+$/m);
    expect(watched.output.split('\n').every((line) => line.length <= 100)).toBe(true);

    // Fetched: the PNG the job reports, byte for byte.
    const fetched = stepOf(steps, /\/jobs\/\$id\/images\/0/, 'downloads an image');
    const done = (await (await fetch(`${service.url}/jobs/${id}`)).json()) as { status: string; result: { images: { sha256: string }[] } };
    expect(done.status).toBe('succeeded');
    const file = /-o (\S+)/.exec(fetched.source)![1]!;
    const png = await readFile(join(cwd, file));
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(createHash('sha256').update(png).digest('hex')).toBe(done.result.images[0]!.sha256);
    expect(fetched.output.trim()).toBe(`200 image/png ${png.length} bytes`);

    // Canceled: a second job, canceled while queued (200) or running (202), its stream ending canceled.
    const canceled = stepOf(steps, /-X DELETE/, 'cancels a job');
    expect(canceled.output).toMatch(/^HTTP 20[02]$/m);
    const other = JOB_ID.exec(canceled.output)![0];
    expect(other).not.toBe(id);
    expect(canceled.output.trim().split('\n').at(-1)).toBe('event: canceled');
    const ended = (await (await fetch(`${service.url}/jobs/${other}`)).json()) as { status: string };
    expect(ended.status).toBe('canceled');
  });
});
