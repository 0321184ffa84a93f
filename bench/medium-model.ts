import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { findPython, pythonEnv } from '@pixelflow/cli/python';
import { REPO } from '../scripts/compiled.mjs';

// The random medium model the service benchmarks share: 64 px, 4 stages, a realistic width (7.5M
// parameters), made once with our Python tools (a random checkpoint, then our converter) into
// ~/.cache/pixelflow/bench/medium-random-64/model, the folder and recipe of bench:throughput's
// --medium, so that either benchmark reuses what the other made. Needs /usr/bin/python3 with torch
// and onnx the first time.

export const MEDIUM_MODEL_ROOT = join(homedir(), '.cache/pixelflow/bench/medium-random-64');

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(command, args, { cwd: REPO, env, maxBuffer: 1 << 24 }, (error, _out, err) => (error ? reject(new Error(`${command} ${args.join(' ')}: ${err || error.message}`)) : resolve())),
  );
}

/** The medium model's folder, made first if it is not there yet. */
export async function mediumModel(): Promise<string> {
  const model = join(MEDIUM_MODEL_ROOT, 'model');
  if (existsSync(join(model, 'pixelflow.json'))) return model;
  const { python } = await findPython();
  if (!python) throw new Error('the medium model needs a Python with torch and onnx (see docs/development.md)');
  await mkdir(MEDIUM_MODEL_ROOT, { recursive: true });
  const checkpoint = join(MEDIUM_MODEL_ROOT, 'checkpoint');
  const pythonPath = { ...pythonEnv(), PYTHONPATH: join(REPO, 'pytorch') };
  await run(python.executable, ['-m', 'pixelflow.random_checkpoint', checkpoint, '--heads', '4', '--head-dim', '64', '--depth', '6', '--resolution', '64', '--stages', '4'], pythonPath);
  await run(process.execPath, [join(REPO, 'packages/cli/bin/pixelflow.mjs'), 'convert', checkpoint, model, '--name', 'medium-random-64', '--force']);
  return model;
}
