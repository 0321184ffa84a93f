import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { keys, sendHeartbeat } from '@pixelflow/queue';
import type { ModelManifest } from '@pixelflow/schemas';
import { buildWeb } from '@pixelflow/web/build';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, TINY, type TestService } from '../service/support.ts';
import { launchChromium } from './browser.ts';

// The class picker with an ImageNet-sized list: 1000 names, opening on "daisy" as the original demo
// does. Only the API runs (the page needs no worker to pick a class); a heartbeat of a worker that
// serves this model makes /readyz say ready.

const DAISY = 985;

let service: TestService;
let browser: Browser;
let dir: string;
let beat: ReturnType<typeof setInterval>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pixelflow-imagenet-page-'));
  const manifest = JSON.parse(await readFile(join(TINY, 'pixelflow.json'), 'utf8')) as ModelManifest;
  const names = Array.from({ length: 1000 }, (_, i) => (i === DAISY ? 'daisy' : i === 984 ? 'rapeseed' : `imagenet class ${i}`));
  const imagenet = { ...manifest, architecture: { ...manifest.architecture, num_classes: 1000 }, classes: { ...manifest.classes, names, null_label: 1000 } };
  await mkdir(join(dir, 'model'));
  await writeFile(join(dir, 'model/pixelflow.json'), JSON.stringify(imagenet));
  await copyFile(join(TINY, 'model.onnx'), join(dir, 'model/model.onnx'));
  await buildWeb(join(dir, 'web'));
  service = await startService({ env: { MODEL_DIR: join(dir, 'model'), WEB_DIR: join(dir, 'web') } });
  const heartbeat = () =>
    sendHeartbeat(service.redis, keys(service.prefix), {
      worker_id: 'page-test',
      state: 'ready',
      model: { name: imagenet.name, resolution: imagenet.resolution, stages: imagenet.stages.map((s) => s.resolution), classes: 1000, weights_sha256: imagenet.source.weights_sha256 },
      provider: 'cuda',
      pid: process.pid,
      hostname: hostname(),
      started_at: new Date().toISOString(),
      sent_at: new Date().toISOString(),
    }, 10);
  await heartbeat();
  beat = setInterval(() => void heartbeat(), 500);
  browser = await launchChromium();
});

afterAll(async () => {
  clearInterval(beat);
  await browser?.close();
  await service?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('the class picker with 1000 ImageNet classes', () => {
  it('opens on daisy, finds a class by any part of its name, and is driven by the keyboard', async () => {
    const page = await browser.newPage();
    await page.goto(`${service.url}/`);
    await page.waitForSelector('body[data-ready=true]', { timeout: 30_000 });
    expect(await page.textContent('#model-status-text')).toMatch(/· cuda$/);
    expect(await page.inputValue('#class-input')).toBe('daisy');
    // Every name is searchable; only the first 50 matches are in the list at once.
    await page.focus('#class-input');
    await page.keyboard.type('class 99');
    const shown = await page.locator('#class-options li[role=option]').allTextContents();
    expect(shown).toEqual(['imagenet class 99', ...Array.from({ length: 10 }, (_, i) => `imagenet class ${990 + i}`)]);
    await page.fill('#class-input', 'class');
    await expect.poll(() => page.locator('#class-options li[role=option]').count()).toBe(50);
    expect(await page.textContent('#class-options li.more')).toBe('948 more: keep typing');
    await page.fill('#class-input', 'seed');
    await expect.poll(() => page.locator('#class-options li[role=option]').allTextContents()).toEqual(['rapeseed']);
    await page.keyboard.press('Enter');
    expect(await page.inputValue('#class-input')).toBe('rapeseed');
    expect(await page.getAttribute('#class-input', 'aria-expanded')).toBe('false');
    // Escape closes the list and keeps the chosen class.
    await page.keyboard.type('zzz');
    expect(await page.textContent('#class-options')).toContain('No class matches');
    await page.keyboard.press('Escape');
    expect(await page.inputValue('#class-input')).toBe('rapeseed');
    await page.close();
  });
});
