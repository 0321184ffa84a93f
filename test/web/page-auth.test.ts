import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { DEFAULT_MODEL_DIR } from '@pixelflow/formats';
import { ApiKeys, keys as makeKeys } from '@pixelflow/queue';
import { buildWeb } from '@pixelflow/web/build';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type TestService } from '../service/support.ts';
import { launchChromium } from './browser.ts';

// The web page in a real Chromium against a real API with AUTH=on and a real worker: the key
// field appears after the first 401, a refused key says why, the right key generates, images
// arrive as data: URLs fetched with the key, and the key never appears in a URL the browser asked for.

let service: TestService;
let browser: Browser;
let context: BrowserContext;
let webDir: string;
let key: string;
/** Every URL this browser requested, from every page of the context. */
const requested: string[] = [];

async function openPage(): Promise<Page> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('close', () => expect(errors, 'errors thrown in the page').toEqual([]));
  await page.goto(`${service.url}/`);
  return page;
}

beforeAll(async () => {
  webDir = await mkdtemp(join(tmpdir(), 'pixelflow-web-auth-'));
  await buildWeb(webDir);
  service = await startService({ env: { AUTH: 'on', MODEL_DIR: DEFAULT_MODEL_DIR, WEB_DIR: webDir, ORT_THREADS: '1', SSE_HEARTBEAT_MS: '1000' } });
  key = (await new ApiKeys(service.redis, makeKeys(service.prefix)).create({ name: 'web-page', admin: false, ratePerMinute: null, maxActive: null })).key;
  await service.startWorker();
  browser = await launchChromium();
  context = await browser.newContext({ permissions: ['clipboard-read', 'clipboard-write'], viewport: { width: 1200, height: 900 } });
  context.on('request', (request) => requested.push(request.url()));
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await service?.stop();
  await rm(webDir, { recursive: true, force: true });
});

describe('the web page with AUTH=on', () => {
  it('asks for a key after the 401, says why a wrong one is refused, generates with the right one (data: images, key in no URL), and keeps it across a reload', async () => {
    const page = await openPage();
    await page.waitForSelector('#api-key-form:not([hidden])', { timeout: 30_000 });
    expect(await page.getAttribute('#api-key', 'type')).toBe('password');
    expect(await page.locator('#generate').isDisabled()).toBe(true);

    await page.fill('#api-key', 'pf_wrong_key_0000');
    await page.click('#api-key-save');
    await expect.poll(() => page.textContent('#api-key-error'), { timeout: 15_000 }).not.toBe('');
    expect(await page.getAttribute('body', 'data-ready')).toBeNull();

    await page.fill('#api-key', key);
    await page.click('#api-key-save');
    await page.waitForSelector('body[data-ready=true]', { timeout: 30_000 });
    expect(await page.textContent('#api-key-error')).toBe('');

    await page.fill('#num-images', '2');
    await page.fill('#seed', '42');
    await page.click('#generate');
    // Generous: the worker loads its model on first use, on a shared 2-core machine.
    await page.waitForSelector('#gallery li:nth-child(2) img[src^="data:"]', { timeout: 90_000 });
    await page.waitForSelector('#previews img', { timeout: 10_000 });
    await expect
      .poll(() => page.evaluate(`[...document.querySelectorAll('#gallery img')].map((img) => img.complete && img.naturalWidth > 0)`), { timeout: 10_000 })
      .toEqual([true, true]);
    for (const link of await page.locator('#gallery a[download]').all()) expect(await link.getAttribute('href')).toMatch(/^data:image\/png;base64,/);
    for (const src of await page.locator('#previews img').evaluateAll((imgs) => imgs.map((img) => img.getAttribute('src') ?? ''))) {
      expect(src).toMatch(/^data:image\/png;base64,/);
    }

    await page.click('#copy-curl');
    const curl = (await page.evaluate('navigator.clipboard.readText()')) as string;
    expect(curl).toContain('-H "Authorization: Bearer $PIXELFLOW_API_KEY"');
    expect(curl).not.toContain(key);

    // The key went in headers only: in no URL requested, and not in the page's own resource list.
    const resources = (await page.evaluate(`performance.getEntriesByType('resource').map((entry) => entry.name).concat(location.href)`)) as string[];
    expect(requested.some((url) => url.includes('/jobs/'))).toBe(true);
    expect([...requested, ...resources].filter((url) => url.includes(key) || url.includes('wrong_key'))).toEqual([]);

    // A reload uses the stored key: ready without typing it again.
    await page.reload();
    await page.waitForSelector('body[data-ready=true]', { timeout: 30_000 });
    expect(await page.inputValue('#api-key')).toBe(key);
    expect(await page.isVisible('#api-key-form')).toBe(true);
    await page.close();
  }, 180_000);
});
