import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  describeTried,
  findPython,
  installHint,
  probePython,
  pythonCandidates,
  pythonEnv,
  type PythonCandidate,
} from '../src/python.ts';
import { pythonSourceDir } from '../src/repo.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pixelflow-python-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A shell script standing in for a Python interpreter; returns it as a candidate. */
async function fakePython(name: string, body: string, mode = 0o755): Promise<PythonCandidate> {
  const path = join(dir, name);
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, mode);
  return { command: path, label: path };
}

/** A fake that answers the probe the way our probe script would. */
function probeAnswer(missing: string[], torch: string | null): string {
  return `echo '${JSON.stringify({ executable: '/opt/fake/bin/python3', missing, torch })}'`;
}

describe('pythonCandidates', () => {
  it('tries python3 on PATH, then Debian’s /usr/bin/python3', () => {
    expect(pythonCandidates({}).map((c) => c.command)).toEqual(['python3', '/usr/bin/python3']);
  });

  it('tries $PIXELFLOW_PYTHON first', () => {
    expect(pythonCandidates({ PIXELFLOW_PYTHON: '/opt/venv/bin/python' })).toEqual([
      { command: '/opt/venv/bin/python', label: 'PIXELFLOW_PYTHON=/opt/venv/bin/python', explicit: true },
      { command: 'python3', label: 'python3' },
      { command: '/usr/bin/python3', label: '/usr/bin/python3' },
    ]);
  });

  it('lets $PIXELFLOW_PYTHON_CANDIDATES replace the fallbacks', () => {
    const env = { PIXELFLOW_PYTHON_CANDIDATES: ['/a/python', '', '/b/python'].join(delimiter) };
    expect(pythonCandidates(env).map((c) => c.command)).toEqual(['/a/python', '/b/python']);
  });
});

describe('probePython', () => {
  it('reports a candidate that does not exist', async () => {
    const probe = await probePython({ command: join(dir, 'nope'), label: 'nope' });
    expect(probe).toMatchObject({ ok: false, problem: 'not found' });
  });

  it('reports a candidate that is not executable', async () => {
    const candidate = await fakePython('not-executable', 'exit 0', 0o644);
    expect(await probePython(candidate)).toMatchObject({ ok: false, problem: 'not executable' });
  });

  it('reports a candidate that fails', async () => {
    const candidate = await fakePython('exits-1', 'exit 1');
    expect(await probePython(candidate)).toMatchObject({ ok: false, problem: 'exited with status 1' });
  });

  it('reports a candidate that is not a Python', async () => {
    const candidate = await fakePython('talks', 'echo hello');
    expect(await probePython(candidate)).toMatchObject({ ok: false, problem: 'did not answer like a Python 3 interpreter' });
  });

  it('names the modules it cannot import', async () => {
    const candidate = await fakePython('no-torch', probeAnswer(['torch', 'onnx'], null));
    expect(await probePython(candidate)).toMatchObject({ ok: false, problem: 'cannot import torch, onnx' });
  });

  it('rejects a torch older than 1.13', async () => {
    const candidate = await fakePython('old-torch', probeAnswer([], '1.12.1+cpu'));
    expect(await probePython(candidate)).toMatchObject({ ok: false, problem: 'torch 1.12.1+cpu is older than 1.13' });
  });

  it.each(['1.13.0a0', '2.5.1+cu121'])('accepts torch %s and reports the real executable', async (version) => {
    const candidate = await fakePython(`torch-${version}`, probeAnswer([], version));
    expect(await probePython(candidate)).toEqual({
      candidate,
      ok: true,
      executable: '/opt/fake/bin/python3',
      torchVersion: version,
    });
  });

  // The probe script itself, run by a real interpreter (CI installs one).
  it('runs its probe script on a real Python', async () => {
    const { python, tried } = await findPython({ modules: ['json'] });
    expect(python, describeTried(tried)).not.toBeNull();
    expect(python?.executable).toMatch(/python/);
    const missing = await probePython(python!.candidate, ['json', 'pixelflow_no_such_module']);
    expect(missing).toMatchObject({ ok: false, problem: 'cannot import pixelflow_no_such_module' });
  });
});

describe('findPython', () => {
  it('returns the first usable candidate and stops probing', async () => {
    const broken = await fakePython('broken', 'exit 1');
    const good = await fakePython('good', probeAnswer([], '2.1.0'));
    const never = await fakePython('never', 'echo probed >&2; exit 1');
    const { python, tried } = await findPython({ candidates: [broken, good, never] });
    expect(python).toMatchObject({ candidate: good, ok: true, torchVersion: '2.1.0' });
    expect(tried.map((p) => p.candidate)).toEqual([broken, good]);
  });

  it('returns null and every probe when nothing is usable', async () => {
    const missing = { command: join(dir, 'missing'), label: 'PIXELFLOW_PYTHON=/missing' };
    const broken = await fakePython('broken-too', 'exit 1');
    const { python, tried } = await findPython({ candidates: [missing, broken] });
    expect(python).toBeNull();
    expect(describeTried(tried)).toBe(`PIXELFLOW_PYTHON=/missing (not found), ${broken.label} (exited with status 1)`);
  });

  it('explains what to install', () => {
    expect(installHint()).toBe(
      'On Debian/Ubuntu: apt-get install -y python3-torch python3-onnx python3-yaml python3-numpy libopenblas0-pthread; ' +
        'or set PIXELFLOW_PYTHON to a python that has torch>=1.13, onnx, pyyaml, numpy.',
    );
    expect(installHint({ pytest: true })).toBe(
      'On Debian/Ubuntu: apt-get install -y python3-torch python3-onnx python3-yaml python3-numpy python3-pytest ' +
        'libopenblas0-pthread; or set PIXELFLOW_PYTHON to a python that has torch>=1.13, onnx, pyyaml, numpy, pytest.',
    );
  });
});

describe('pythonEnv', () => {
  it('puts the repository’s pytorch/ on PYTHONPATH', () => {
    expect(pythonEnv({}).PYTHONPATH).toBe(pythonSourceDir);
    expect(pythonEnv({ PYTHONPATH: '/extra' }).PYTHONPATH).toBe(`${pythonSourceDir}${delimiter}/extra`);
    expect(pythonSourceDir).toMatch(/[/\\]pytorch$/);
  });
});
