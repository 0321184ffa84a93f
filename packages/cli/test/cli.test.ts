import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pythonSourceDir, repoRoot } from '../src/repo.ts';
import { pixelflow, type Result } from './support/run-cli.ts';

// The CLI as users run it: a real child process, real exit codes, real stderr.


/** Asserts a usage failure: status 2 and exactly one `pixelflow: ...` line on stderr. */
function expectOneLineFailure(result: Result, message: string | RegExp): void {
  expect(result.code).toBe(2);
  expect(result.stdout).toBe('');
  const lines = result.stderr.split('\n');
  expect(lines).toHaveLength(2); // the line and its newline
  expect(lines[1]).toBe('');
  if (typeof message === 'string') expect(lines[0]).toBe(message);
  else expect(lines[0]).toMatch(message);
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pixelflow-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('pixelflow', () => {
  it('prints usage for --help and exits 0', async () => {
    const result = await pixelflow(['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage: pixelflow <command>/);
    expect(result.stdout).toContain('convert');
  });

  it('prints usage on stderr and exits 2 without a command', async () => {
    const result = await pixelflow([]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^Usage: pixelflow <command>/);
  });

  it('rejects an unknown command in one line', async () => {
    expectOneLineFailure(
      await pixelflow(['serve']),
      "pixelflow: unknown command 'serve' (commands: convert, generate, eval, jobs, keys, cuda; see pixelflow --help)",
    );
  });

  it('suggests the command or option meant when one is a typo away', async () => {
    expectOneLineFailure(
      await pixelflow(['genrate']),
      "pixelflow: unknown command 'genrate' (did you mean generate?) (commands: convert, generate, eval, jobs, keys, cuda; see pixelflow --help)",
    );
    expectOneLineFailure(await pixelflow(['generate', '--cont', '3']), 'pixelflow generate: unknown option --cont (did you mean --count?) (see pixelflow generate --help)');
    expectOneLineFailure(await pixelflow(['generate', '--sed=4']), 'pixelflow generate: unknown option --sed (did you mean --seed?) (see pixelflow generate --help)');
    expectOneLineFailure(await pixelflow(['--verison']), 'pixelflow: unknown option --verison (did you mean --version?) (see pixelflow --help)');
    // Nothing close: no guess.
    expectOneLineFailure(await pixelflow(['generate', '--colour', 'red']), 'pixelflow generate: unknown option --colour (see pixelflow generate --help)');
  });

  it('prints its version and the versions of what decides its numbers for --version', async () => {
    const cli = JSON.parse(await readFile(join(repoRoot, 'packages/cli/package.json'), 'utf8')) as { version: string };
    const ort = JSON.parse(await readFile(join(repoRoot, 'node_modules/onnxruntime-node/package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const result = await pixelflow([flag]);
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(`pixelflow ${cli.version} (onnxruntime-node ${ort.version}, Node ${process.version})\n`);
    }
  });
});

describe('pixelflow convert: arguments', () => {
  it('prints its usage for --help and exits 0', async () => {
    const result = await pixelflow(['convert', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage: pixelflow convert <checkpoint-dir> <out-dir>/);
    expect(result.stdout).toContain('--dtype fp32|fp16');
  });

  it('rejects a bad --dtype', async () => {
    expectOneLineFailure(
      await pixelflow(['convert', 'ckpt', 'out', '--dtype', 'bf16']),
      "pixelflow convert: --dtype must be fp32 or fp16, not 'bf16'",
    );
  });

  it('rejects a bad --attention', async () => {
    expectOneLineFailure(
      await pixelflow(['convert', 'ckpt', 'out', '--attention', 'flash']),
      "pixelflow convert: --attention must be plain or multihead, not 'flash'",
    );
  });

  it.each([[['convert']], [['convert', 'ckpt']]])('rejects missing positionals: %j', async (args) => {
    expectOneLineFailure(
      await pixelflow(args),
      'pixelflow convert: missing <checkpoint-dir> and <out-dir> (see pixelflow convert --help)',
    );
  });

  it.each([
    [['--default-cfg', '0.5'], "--default-cfg must be a number from 1 to 25, not '0.5'"],
    [['--default-cfg', 'high'], "--default-cfg must be a number from 1 to 25, not 'high'"],
    [['--default-steps', '0'], "--default-steps must be an integer from 1 to 100, or one per stage separated by commas, not '0'"],
    [['--default-steps', '10,x'], "--default-steps must be an integer from 1 to 100, or one per stage separated by commas, not '10,x'"],
    [['--default-steps', '2.5'], "--default-steps must be an integer from 1 to 100, or one per stage separated by commas, not '2.5'"],
  ])('rejects bad sampling defaults: %j', async (flags, message) => {
    expectOneLineFailure(await pixelflow(['convert', 'ckpt', 'out', ...flags]), `pixelflow convert: ${message}`);
  });

  it('rejects an extra positional', async () => {
    expectOneLineFailure(await pixelflow(['convert', 'a', 'b', 'c']), "pixelflow convert: unexpected argument 'c'");
  });

  it('rejects an unknown flag', async () => {
    expectOneLineFailure(
      await pixelflow(['convert', 'a', 'b', '--fp16']),
      'pixelflow convert: unknown option --fp16 (see pixelflow convert --help)',
    );
  });

  it('rejects a flag without its value', async () => {
    expectOneLineFailure(await pixelflow(['convert', 'a', 'b', '--name']), /^pixelflow convert: Option '--name <value>'/);
  });
});

describe('pixelflow convert: Python hand-over', () => {
  let emptyPath: string;
  let fakePython: string;
  let brokenPython: string;
  const log = () => join(dir, 'fake-python.log');

  beforeAll(async () => {
    emptyPath = join(dir, 'empty-bin');
    await mkdir(emptyPath);
    // Answers the discovery probe like a Python with torch 2.1; run as the
    // converter, it records how it was called and exits 3.
    fakePython = join(dir, 'fake-python');
    await writeFile(
      fakePython,
      [
        '#!/bin/sh',
        'if [ "$1" = "-c" ]; then',
        `  echo '{"executable": "${fakePython}", "missing": [], "torch": "2.1.0"}'`,
        '  exit 0',
        'fi',
        'printf "%s\\n" "$@" > "$FAKE_PYTHON_LOG"',
        'printf "PYTHONPATH=%s\\n" "$PYTHONPATH" >> "$FAKE_PYTHON_LOG"',
        'exit 3',
        '',
      ].join('\n'),
    );
    brokenPython = join(dir, 'broken-python');
    await writeFile(brokenPython, '#!/bin/sh\nexit 1\n');
    await chmod(fakePython, 0o755);
    await chmod(brokenPython, 0o755);
  });

  // No python3 on PATH and a candidate list without the system Python: nothing usable.
  it('says exactly what to install when no Python is usable', async () => {
    const result = await pixelflow(['convert', 'ckpt', 'out'], {
      PATH: emptyPath,
      PIXELFLOW_PYTHON: '/nonexistent',
      PIXELFLOW_PYTHON_CANDIDATES: brokenPython,
    });
    expectOneLineFailure(
      result,
      `pixelflow: no Python with PyTorch and onnx found (tried: PIXELFLOW_PYTHON=/nonexistent (not found), ` +
        `${brokenPython} (exited with status 1)). On Debian/Ubuntu: apt-get install -y python3-torch python3-onnx ` +
        `python3-yaml python3-numpy libopenblas0-pthread; or set PIXELFLOW_PYTHON to a python that has ` +
        `torch>=1.13, onnx, pyyaml, numpy.`,
    );
  });

  it('runs python -m pixelflow.convert with absolute paths and exits with its status', async () => {
    const result = await pixelflow(
      [
        'convert', 'ckpt', '/models/out', '--dtype', 'fp16', '--attention', 'multihead', '--name', 'tiny model',
        '--class-names', 'names.txt', '--default-cfg', '2.5', '--default-steps', '4,6,8,10', '--force',
      ],
      { PATH: emptyPath, PIXELFLOW_PYTHON: fakePython, FAKE_PYTHON_LOG: log() },
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(3);
    expect((await readFile(log(), 'utf8')).split('\n')).toEqual([
      '-m',
      'pixelflow.convert',
      join(repoRoot, 'ckpt'),
      '/models/out',
      '--dtype',
      'fp16',
      '--attention',
      'multihead',
      '--name',
      'tiny model',
      '--class-names',
      join(repoRoot, 'names.txt'),
      '--default-cfg',
      '2.5',
      '--default-steps',
      '4,6,8,10',
      '--force',
      `PYTHONPATH=${pythonSourceDir}`,
      '',
    ]);
  });

  it('defaults to --dtype fp32 and passes no optional flags', async () => {
    await pixelflow(['convert', '/ckpt', '/out'], { PATH: emptyPath, PIXELFLOW_PYTHON: fakePython, FAKE_PYTHON_LOG: log() });
    const args = (await readFile(log(), 'utf8')).split('\n');
    expect(args.slice(0, 6)).toEqual(['-m', 'pixelflow.convert', '/ckpt', '/out', '--dtype', 'fp32']);
    expect(args[6]).toMatch(/^PYTHONPATH=/);
  });

  it('warns when $PIXELFLOW_PYTHON is unusable and another Python is used', async () => {
    const result = await pixelflow(['convert', '/ckpt', '/out'], {
      PATH: emptyPath,
      PIXELFLOW_PYTHON: brokenPython,
      PIXELFLOW_PYTHON_CANDIDATES: fakePython,
      FAKE_PYTHON_LOG: log(),
    });
    expect(result.code).toBe(3);
    expect(result.stderr).toBe(
      `pixelflow: warning: PIXELFLOW_PYTHON=${brokenPython} is not usable (exited with status 1); using ${fakePython}\n`,
    );
  });
});
