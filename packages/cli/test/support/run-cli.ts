import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../../src/repo.ts';

// The CLI as users run it: a real child process, real exit codes, real stderr.

export const MAIN = join(repoRoot, 'packages/cli/src/main.ts');

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export function pixelflow(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Result> {
  return new Promise((resolve) => {
    // cwd is the repository root so that `--import tsx` resolves from its node_modules.
    execFile(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: repoRoot, env }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Runs `node ...nodeArgs generate ...generateArgs`, sends SIGINT once the first stage is done (mid
 * sampling) and resolves with its status and output. A child that dies before that resolves too,
 * so the caller's assertions fail instead of the test hanging.
 */
export async function interruptMidSampling(nodeArgs: string[], generateArgs: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [...nodeArgs, 'generate', ...generateArgs], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  await new Promise<void>((resolve) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (stderr.includes('stage 1/4')) resolve();
    });
    child.on('close', () => resolve());
  });
  child.kill('SIGINT');
  const code = await exited;
  return { code, stdout, stderr };
}
