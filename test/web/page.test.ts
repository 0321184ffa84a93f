import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { DEFAULT_MODEL_DIR } from '@pixelflow/formats';
import { buildWeb } from '@pixelflow/web/build';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../services/api/src/app.ts';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { postJob, REPO, startService, waitForStatus, type TestService } from '../service/support.ts';
import { launchChromium } from './browser.ts';

// The web page in a real Chromium (Debian's, driven by playwright-core; nothing is downloaded),
// against the real API and worker with the embedded default model.

const OUTPUT = join(REPO, 'test-output/web');
// A job long enough to cancel, or to outlive an API restart: 8 images, 100 steps in every stage.
const LONG_STEPS = 100;

let service: TestService;
let browser: Browser;
/** One browser profile for the tests, so that its recent jobs accumulate as a user's would. */
let profile: BrowserContext;
let webDir: string;

async function openPage(context: BrowserContext = profile): Promise<Page> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('close', () => expect(errors, 'errors thrown in the page').toEqual([]));
  await page.goto(`${service.url}/`);
  await page.waitForSelector('body[data-ready=true]', { timeout: 30_000 });
  return page;
}

async function imagesOf(id: string): Promise<string[]> {
  const job = (await waitForStatus(service.url, id, ['succeeded'], 60_000)) as { result: { images: { sha256: string }[] } };
  return job.result.images.map((image) => image.sha256);
}

function pngSize(png: Buffer): { width: number; height: number } {
  expect(png.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
  expect(png.subarray(12, 16).toString('ascii')).toBe('IHDR');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

async function setLongJob(page: Page): Promise<void> {
  for (const slider of await page.locator('#steps-sliders input[type=range]').all()) {
    await slider.focus();
    await page.keyboard.press('End');
    await expect.poll(() => slider.inputValue()).toBe(String(LONG_STEPS));
  }
  await page.fill('#num-images', '8');
}

beforeAll(async () => {
  webDir = await mkdtemp(join(tmpdir(), 'pixelflow-web-'));
  await buildWeb(webDir);
  await mkdir(OUTPUT, { recursive: true });
  // No worker yet: the page must wait for readiness first.
  // One job at a time (MAX_CONCURRENT_JOBS=1): the page's queue position needs a job that waits.
  service = await startService({ env: { MODEL_DIR: DEFAULT_MODEL_DIR, WEB_DIR: webDir, ORT_THREADS: '1', SSE_HEARTBEAT_MS: '1000', MAX_CONCURRENT_JOBS: '1' } });
  browser = await launchChromium();
  profile = await browser.newContext({ acceptDownloads: true, permissions: ['clipboard-read', 'clipboard-write'], viewport: { width: 1200, height: 900 } });
});

afterAll(async () => {
  await browser?.close();
  await service?.stop();
  await rm(webDir, { recursive: true, force: true });
});

describe('the web page', () => {
  it('says the model is loading, with every control disabled, until /readyz is ready; then shows the model', async () => {
    const page = await browser.newPage();
    await page.goto(`${service.url}/`);
    await expect.poll(() => page.textContent('#model-status-text')).toMatch(/no worker with the model pixelflow-mnist|Loading/);
    expect(await page.isVisible('#model-status .spinner')).toBe(true);
    for (const control of ['#class-input', '#dopri5', '#cfg', '#seed', '#random-seed', '#num-images', '#generate']) {
      expect(await page.locator(control).isDisabled(), control).toBe(true);
    }
    await service.startWorker();
    await page.waitForSelector('body[data-ready=true]', { timeout: 30_000 });
    expect(await page.textContent('#model-status-text')).toBe('pixelflow-mnist · 32×32 · 4 stages (4 → 8 → 16 → 32) · cpu');
    expect(await page.locator('#generate').isEnabled()).toBe(true);
    expect(await page.isVisible('#model-status .spinner')).toBe(false);
    // The demo's controls, with the demo's defaults and one steps slider per stage.
    expect(await page.inputValue('#class-input')).toBe('digit 0'); // no "daisy" here: the model's default class
    expect(await page.inputValue('#noise-shift')).toBe('1');
    expect(await page.inputValue('#cfg')).toBe('4');
    const steps = await Promise.all((await page.locator('#steps-sliders input[type=range]').all()).map((slider) => slider.inputValue()));
    expect(steps).toEqual(['10', '10', '10', '10']);
    expect(await page.inputValue('#num-images')).toBe('4');
    await page.close();
  });

  it('generates from the keyboard: stage previews arrive before the images, every image downloads as a PNG of the model’s size, and "copy as curl" makes the same images again', async () => {
    const page = await openPage();
    // Search the class picker and choose with the arrow keys and Enter.
    await page.focus('#class-input');
    await page.keyboard.type('7');
    await expect.poll(() => page.locator('#class-options li[role=option]').allTextContents()).toEqual(['digit 7']);
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Enter');
    expect(await page.inputValue('#class-input')).toBe('digit 7');
    await page.fill('#seed', '1234');
    // Record the order in which previews and images appear.
    // (Browser code as text: this file is type-checked for Node, without the DOM's types.)
    await page.evaluate(`window.seen = [];
      for (const id of ['previews', 'gallery']) {
        const list = document.getElementById(id);
        new MutationObserver(() => window.seen.push(id + ':' + list.children.length)).observe(list, { childList: true });
      }`);
    await page.focus('#num-images');
    await page.keyboard.press('Enter'); // submits the form
    await page.waitForSelector('#gallery li:nth-child(4) img', { timeout: 60_000 });
    await expect.poll(() => page.textContent('#job-status')).toMatch(/^Done: 4 images in \d+\.\d s$/);
    const seen = (await page.evaluate('window.seen')) as string[];
    const firstPreview = seen.findIndex((s) => s.startsWith('previews:') && s !== 'previews:0');
    const firstImages = seen.findIndex((s) => s.startsWith('gallery:') && s !== 'gallery:0');
    expect(firstPreview).toBeGreaterThanOrEqual(0);
    expect(firstPreview).toBeLessThan(firstImages);
    expect(await page.locator('#previews li').allTextContents()).toEqual(['Stage 1 · 4×4', 'Stage 2 · 8×8', 'Stage 3 · 16×16', 'Stage 4 · 32×32']);
    const id = decodeURIComponent(new URL(page.url()).hash.replace('#job=', ''));
    const shas = await imagesOf(id);
    expect(shas).toHaveLength(4);
    expect(await page.locator('#gallery figcaption > span:first-child').allTextContents()).toEqual(['digit 7 · seed 1234', 'digit 7 · seed 1235', 'digit 7 · seed 1236', 'digit 7 · seed 1237']);

    for (const [n, link] of (await page.locator('#gallery a[download]').all()).entries()) {
      const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
      expect(download.suggestedFilename()).toBe(`pixelflow-mnist-digit_7-seed${1234 + n}.png`);
      const png = await readFile((await download.path()) as string);
      expect(pngSize(png)).toEqual({ width: 32, height: 32 });
      expect((await import('node:crypto')).createHash('sha256').update(png).digest('hex')).toBe(shas[n]);
    }

    await page.click('#copy-curl');
    await expect.poll(() => page.textContent('#copy-result')).toBe('Copied.');
    const command = (await page.evaluate('navigator.clipboard.readText()')) as string;
    expect(command).toMatch(/^curl -s -X POST 'http:\/\/127\.0\.0\.1:\d+\/jobs' /);
    const { stdout } = await promisify(execFile)('sh', ['-c', command]);
    const again = JSON.parse(stdout) as { id: string; parameters: Record<string, unknown> };
    expect(again.parameters).toMatchObject({ class_name: 'digit 7', seed: 1234, num_images: 4, cfg_scale: 4, steps: [10, 10, 10, 10], solver: 'euler' });
    expect(await imagesOf(again.id)).toEqual(shas);

    await page.screenshot({ path: join(OUTPUT, 'finished.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390); // no sideways scrolling on a phone
    await page.screenshot({ path: join(OUTPUT, 'finished-phone.png'), fullPage: true });
    await page.close();
  });

  it('runs what the sliders say (CFG, noise shift, steps of each stage), and Dopri5 turns the Euler-only controls off', async () => {
    const page = await openPage();
    await page.focus('#cfg');
    for (let i = 0; i < 25; i++) await page.keyboard.press('ArrowRight');
    expect(await page.textContent('#cfg-value')).toBe('6.5');
    await page.focus('#noise-shift');
    for (let i = 0; i < 2; i++) await page.keyboard.press('ArrowRight');
    await page.focus('#steps-3');
    for (let i = 0; i < 5; i++) await page.keyboard.press('ArrowLeft');
    await page.fill('#num-images', '1');
    await page.fill('#seed', '99');
    await page.click('#generate');
    await expect.poll(() => page.textContent('#job-status'), { timeout: 60_000 }).toMatch(/^Done: 1 images/);
    expect(JSON.parse((await page.textContent('#job-parameters')) as string)).toMatchObject({ cfg_scale: 6.5, noise_shift: 3, steps: [10, 10, 10, 5], solver: 'euler', seed: 99, num_images: 1 });

    await page.check('#dopri5');
    for (const control of ['#noise-shift', '#steps-0', '#steps-3']) expect(await page.locator(control).isDisabled(), control).toBe(true);
    await page.click('#generate');
    await expect.poll(() => page.textContent('#job-parameters'), { timeout: 60_000 }).toContain('"solver": "dopri5"');
    await expect.poll(() => page.textContent('#job-status'), { timeout: 60_000 }).toMatch(/^Done: 1 images/);
    expect(await page.textContent('#gallery .hint')).toBe('CFG 6.5, Dopri5');
    await page.uncheck('#dopri5');
    expect(await page.locator('#steps-0').isEnabled()).toBe(true);
    await page.close();
  });

  it('shows the API’s own message next to a bad field and sends nothing the API would not accept', async () => {
    const page = await openPage();
    await page.fill('#seed', '-5');
    await page.click('#generate');
    const expected = (await (await postJob(service.url, { class: 0, seed: -5 })).json()) as { errors: { path: string; message: string }[] };
    await expect.poll(() => page.textContent('#seed-error')).toBe(`seed ${expected.errors[0]?.message}`);
    expect(expected.errors[0]?.message).toBe('must be an integer from 0 to 4294967295');
    expect(await page.getAttribute('#seed', 'aria-invalid')).toBe('true');
    expect(await page.isHidden('#job')).toBe(true);
    // A new value clears the field's message: Random draws a valid seed.
    await page.click('#random-seed');
    expect(await page.textContent('#seed-error')).toBe('');
    expect(await page.getAttribute('#seed', 'aria-invalid')).toBeNull();
    const drawn = Number(await page.inputValue('#seed'));
    expect(Number.isInteger(drawn) && drawn >= 0 && drawn <= 0xffff_ffff).toBe(true);
    await page.click('#random-seed');
    expect(Number(await page.inputValue('#seed'))).not.toBe(drawn); // (a repeat: 1 in 2^32)
    await page.close();
  });

  it('shows the queue position of a waiting job, and cancels it while queued and while running', async () => {
    const running = await openPage();
    await setLongJob(running);
    await running.click('#generate');
    await expect.poll(() => running.textContent('#job-status'), { timeout: 30_000 }).toMatch(/^Running: stage/);
    // A second job waits behind it.
    const waiting = await openPage();
    await waiting.click('#generate');
    await expect.poll(() => waiting.textContent('#job-status')).toMatch(/^Queued, position 1/);
    await waiting.click('#cancel');
    await expect.poll(() => waiting.textContent('#job-status')).toMatch(/^Canceled/);
    expect(await waiting.locator('#cancel').isDisabled()).toBe(true);
    expect(await waiting.locator('#gallery li').count()).toBe(0);

    expect(await running.locator('#cancel').isEnabled()).toBe(true);
    await running.click('#cancel');
    await expect.poll(() => running.textContent('#job-status'), { timeout: 30_000 }).toMatch(/^Canceled/);
    for (const page of [running, waiting]) {
      const id = decodeURIComponent(new URL(page.url()).hash.replace('#job=', ''));
      expect(((await (await fetch(`${service.url}/jobs/${id}`)).json()) as { status: string }).status).toBe('canceled');
    }
    expect(await running.locator('#cancel').isDisabled()).toBe(true);
    await running.close();
    await waiting.close();
  });

  it('shows a lost connection and resumes the event stream when the API comes back, missing nothing', async () => {
    // A profile of its own: going offline takes the whole profile offline.
    const context = await browser.newContext();
    const page = await openPage(context);
    await setLongJob(page);
    await page.click('#generate');
    await expect.poll(() => page.textContent('#job-status'), { timeout: 30_000 }).toMatch(/^Running: stage/);
    // The browser going offline is shown at once.
    await context.setOffline(true);
    await expect.poll(() => page.isVisible('#connection')).toBe(true);
    expect(await page.textContent('#connection')).toMatch(/offline/);
    await context.setOffline(false);
    await expect.poll(() => page.isVisible('#connection')).toBe(false);
    // Restart the API on the same port mid-job: the stream drops, the page says so, reconnects
    // with Last-Event-ID and ends with every stage preview and every image.
    const port = new URL(service.url).port;
    await service.app.close();
    await expect.poll(() => page.isVisible('#connection'), { timeout: 15_000 }).toBe(true);
    service.app = await buildApp(loadApiConfig(service.env), { logger: false });
    await service.app.listen({ host: '127.0.0.1', port: Number(port) });
    await expect.poll(() => page.isVisible('#connection'), { timeout: 15_000 }).toBe(false);
    await page.waitForSelector('#gallery li:nth-child(8) img', { timeout: 90_000 });
    expect(await page.locator('#previews li').count()).toBe(4);
    expect(await page.textContent('#job-status')).toMatch(/^Done: 8 images/);
    await context.close();
  });

  it('lists this browser’s recent jobs, newest first, with their status, and re-opens one by id, also from a link', async () => {
    const page = await openPage();
    // Newest first: the two canceled jobs, then the slider test's two, then the digit 7 job.
    await expect.poll(() => page.locator('#recent-jobs li .badge').allTextContents()).toEqual(['canceled', 'canceled', 'succeeded', 'succeeded', 'succeeded']);
    expect(await page.locator('#recent-jobs li button[data-job]').allTextContents()).toEqual(['digit 0 × 4', 'digit 0 × 8', 'digit 0 × 1', 'digit 0 × 1', 'digit 7 × 4']);
    const digit7 = page.locator('#recent-jobs li button[data-job]').nth(4);
    const id = (await digit7.getAttribute('data-job')) as string;
    await digit7.focus();
    await page.keyboard.press('Enter');
    await page.waitForSelector('#gallery li:nth-child(4) img');
    expect(await page.locator('#gallery figcaption > span:first-child').first().textContent()).toBe('digit 7 · seed 1234');
    expect(new URL(page.url()).hash).toBe(`#job=${id}`);
    const linked = await openPage();
    await linked.goto(`${service.url}/#job=${id}`);
    await linked.waitForSelector('#gallery li:nth-child(4) img', { timeout: 30_000 });
    expect(await linked.locator('#previews li').count()).toBe(4);
    await linked.close();
    await page.close();
  });
});
