import { Writable } from 'node:stream';
import pretty from 'pino-pretty';

// How `pnpm start` shows the services' logs: readable lines for a person at a terminal, the JSON
// lines themselves anywhere else (a pipe, a file, a log collector), as the images always do.

/** A stream that turns pino's JSON lines into readable ones on `destination` (lines that are not JSON pass as they are). */
export function readableLogs(destination: Writable | number): Writable {
  return pretty({
    destination,
    colorize: typeof destination === 'number' && process.stdout.isTTY === true,
    translateTime: 'SYS:HH:MM:ss.l',
    // Every line names its service; the pid and host say nothing on one machine.
    ignore: 'pid,hostname,service',
    messageFormat: '{if service}[{service}] {end}{msg}',
    hideObject: false,
    singleLine: true,
    sync: true,
  });
}

/** Whether `pnpm start` should show readable lines: only when its output is a terminal. */
export function wantsReadableLogs(stdout: { isTTY?: boolean } = process.stdout): boolean {
  return stdout.isTTY === true;
}
