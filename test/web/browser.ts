import { chromium, type Browser } from 'playwright-core';

// Debian's Chromium for the browser tests, started the way this closed network needs: no
// background connections (refused here, many at a time), no sandbox (tests run as root). A missing
// browser fails the test file with the fix, rather than skipping it.

export const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

export async function launchChromium(): Promise<Browser> {
  try {
    return await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    });
  } catch (error) {
    throw new Error(`cannot start Chromium at ${CHROMIUM} (install Debian's chromium, or set CHROMIUM_PATH): ${(error as Error).message.split('\n')[0]}`);
  }
}
