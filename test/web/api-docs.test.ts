import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type TestService } from '../service/support.ts';
import { launchChromium } from './browser.ts';

// The API's reference at /docs (Swagger UI) renders the OpenAPI 3.2 document in a real browser:
// every operation is listed and nothing is reported as an error.

let service: TestService;
let browser: Browser;

beforeAll(async () => {
  service = await startService();
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  await service?.stop();
});

describe('/docs', () => {
  it('lists every operation of the document, with no rendering or schema error', async () => {
    const document = (await (await fetch(`${service.url}/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    const operations = Object.values(document.paths).reduce((n, byMethod) => n + Object.keys(byMethod).length, 0);
    const page = await browser.newPage();
    await page.goto(`${service.url}/docs`);
    await expect.poll(() => page.locator('.opblock').count(), { timeout: 30_000 }).toBe(operations);
    expect(await page.locator('.errors-wrapper, .version-pragma').count()).toBe(0);
    expect(await page.locator('.info .title').textContent()).toContain('PixelFlow Serve');
    // The event stream's operation shows its media type.
    await page.locator('.opblock-summary-path[data-path="/jobs/{id}/events"]').click();
    await expect.poll(() => page.locator('.opblock.is-open').textContent(), { timeout: 10_000 }).toContain('text/event-stream');
  });
});
