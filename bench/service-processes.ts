import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// What the service benchmarks share: the API and the worker as child processes, started the way
// `pnpm start` starts them, and a wait for them to answer.

export const REPO = fileURLToPath(new URL('../', import.meta.url));

/** Starts `services/<name>` with `env`; its output goes to this process's. */
export function startService(name: 'api' | 'worker', env: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', join(REPO, `services/${name}/src/main.ts`)], { cwd: REPO, env, stdio: ['ignore', 'inherit', 'inherit'] });
}

/** Resolves once `check` does, trying every 100 ms for up to `seconds`. */
export async function until(check: () => Promise<boolean>, what: string, seconds = 120): Promise<void> {
  for (let i = 0; i < seconds * 10; i++) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}
