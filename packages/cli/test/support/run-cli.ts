import { execFile } from 'node:child_process';
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
