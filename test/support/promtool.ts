import { spawn } from 'node:child_process';

// Debian's promtool (package `prometheus`, which .ci/run installs), as the deploy tests run it. A
// missing promtool is an error that says how to install it, never a skipped test.

export interface PromtoolResult {
  code: number | null;
  output: string;
}

/** `promtool ...args` with `input` on its stdin: its exit status and all it printed. */
export function promtool(args: string[], input = '', cwd?: string): Promise<PromtoolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', args, { stdio: ['pipe', 'pipe', 'pipe'], ...(cwd !== undefined && { cwd }) });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'ENOENT' ? new Error('promtool is not installed: apt-get install prometheus (Debian) gives /usr/bin/promtool') : error),
    );
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(input);
  });
}
