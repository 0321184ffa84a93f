import { execFile } from 'node:child_process';
import { cpSync, existsSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundle, bundlePath, ensureFresh, recordPath, REPO } from '../scripts/compiled.mjs';
import { interruptMidSampling } from '../packages/cli/test/support/run-cli.ts';

// The compiled CLI as users run it (`node packages/cli/bin/pixelflow.mjs`, which
// node_modules/.bin/pixelflow and `pnpm pixelflow` call): it must behave exactly like the
// TypeScript sources run by tsx, and never run a bundle older than its sources.

const TINY = join(REPO, 'test/fixtures/tiny');
const LAUNCHER = 'packages/cli/bin/pixelflow.mjs';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], cwd = REPO): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
    });
  });
}

const compiled = (args: string[]) => run([join(REPO, LAUNCHER), ...args]);
const fromSource = (args: string[]) => run(['--import', 'tsx', join(REPO, 'packages/cli/src/main.ts'), ...args]);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pixelflow-compiled-cli-'));
  // What `pnpm install` did, unless a source changed since (then the launcher would rebuild it
  // in the first test, on that test's time).
  await ensureFresh([bundle('cli')], { logLevel: 'error' });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the compiled CLI, next to the sources run by tsx', () => {
  it.each([[['--help']], [[]], [['serve']], [['generate', '--help']], [['generate', '--count', 'x']], [['generate', '--model', '/nonexistent/model']]])(
    'answers %j with the same status, stdout and stderr',
    async (args) => {
      const [ours, theirs] = await Promise.all([compiled(args), fromSource(args)]);
      expect(ours).toEqual(theirs);
      expect(ours.stdout + ours.stderr).not.toBe('');
    },
  );

  it('generates the same files and the same report on the tiny model', async () => {
    const args = (out: string) => ['generate', '--model', TINY, '--threads', '1', '--out', out, '--count', '2', '--seed', '42', '--steps', '2', '--class', '3'];
    const [ours, theirs] = await Promise.all([compiled(args(join(dir, 'compiled'))), fromSource(args(join(dir, 'source')))]);
    expect(ours.code).toBe(0);
    expect(theirs.code).toBe(0);
    expect(ours.stdout.replaceAll(join(dir, 'compiled'), 'OUT')).toBe(theirs.stdout.replaceAll(join(dir, 'source'), 'OUT'));
    // Timings differ from run to run; everything else is the same.
    const untimed = (stderr: string) => stderr.replace(/\d+(\.\d+)?m?s\b/g, 'T');
    expect(untimed(ours.stderr)).toBe(untimed(theirs.stderr));
    expect(ours.stderr).toMatch(/^pixelflow generate: 2 images 32x32 in /m);
    const names = (await readdir(join(dir, 'compiled'))).sort();
    expect(names).toEqual(['pixelflow-42-00.png', 'pixelflow-42-01.png']);
    for (const name of names) {
      expect((await readFile(join(dir, 'compiled', name))).equals(await readFile(join(dir, 'source', name))), name).toBe(true);
    }
  });

  it('stops on Ctrl-C with status 130 and writes no images', async () => {
    const out = join(dir, 'interrupted');
    const { code, stdout, stderr } = await interruptMidSampling([join(REPO, LAUNCHER)], ['--model', TINY, '--threads', '1', '--out', out, '--count', '8', '--steps', '100']);
    expect(code).toBe(130);
    expect(stdout).toBe('');
    expect(stderr.trimEnd().split('\n').at(-1)).toBe('pixelflow generate: interrupted by SIGINT; no images written');
    expect(existsSync(out)).toBe(false);
  });

  it('is relocatable: the bundle names no absolute path of this checkout, and maps to the sources', async () => {
    const cli = bundle('cli');
    const record = JSON.parse(readFileSync(recordPath(cli), 'utf8')) as { outputs: string[] };
    const outputs = record.outputs.filter((path) => path.endsWith('.mjs'));
    expect(outputs).toContain(cli.out);
    for (const output of outputs) {
      const code = await readFile(join(REPO, output), 'utf8');
      expect(code, output).not.toContain(REPO);
      expect(code, output).toMatch(new RegExp(`//# sourceMappingURL=${basename(output)}\\.map\\n$`));
    }
    // Thread scripts and the embedded model are found beside the original sources.
    const code = await Promise.all(outputs.map((output) => readFile(join(REPO, output), 'utf8')));
    expect(code.join('\n')).toContain('new URL("../../onnx/src/session-thread.ts", import.meta.url)');
    const map = JSON.parse(await readFile(`${bundlePath(cli)}.map`, 'utf8')) as { sources: string[] };
    expect(map.sources).toContain('../src/main.ts');
  });
});

describe('the launcher', () => {
  let copy: string;

  /** The launcher of the copy, run from the copy. */
  const launch = (args: string[]) => run([join(copy, LAUNCHER), ...args], copy);
  const cliBundle = () => join(copy, bundle('cli').out);

  // A copy of the checkout's sources (2 MB) without its bundles, on the same installed packages:
  // the workspace's own links are relative and come along; the root node_modules is linked.
  beforeAll(() => {
    copy = join(dir, 'checkout');
    for (const path of ['package.json', 'tsconfig.base.json', 'scripts', 'packages', 'services']) {
      cpSync(join(REPO, path), join(copy, path), {
        recursive: true,
        verbatimSymlinks: true,
        preserveTimestamps: true,
        filter: (source) => !['dist', 'test', '.cache'].includes(basename(source)),
      });
    }
    symlinkSync(join(REPO, 'node_modules'), join(copy, 'node_modules'));
  });

  it('builds a missing bundle, runs a fresh one as it is, and rebuilds when a source changes', async () => {
    expect(existsSync(cliBundle())).toBe(false);
    const first = await launch(['--help']);
    expect(first.code).toBe(0);
    expect(first.stderr).toBe('');
    expect(first.stdout).toMatch(/^ {2}generate +Generate images of a class/m);
    const built = statSync(cliBundle()).mtimeMs;

    expect((await launch(['--help'])).stdout).toBe(first.stdout);
    expect(statSync(cliBundle()).mtimeMs).toBe(built);

    const summaries = join(copy, 'packages/cli/src/commands/summaries.ts');
    writeFileSync(summaries, readFileSync(summaries, 'utf8').replace('Generate images of a class', 'Make pictures of a class'));
    const second = await launch(['--help']);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/^ {2}generate +Make pictures of a class/m);
    expect(statSync(cliBundle()).mtimeMs).toBeGreaterThan(built);
  });

  it('rebuilds when a bundled workspace package changes, not only the CLI', async () => {
    const before = statSync(cliBundle()).mtimeMs;
    const changed = join(copy, 'packages/schemas/src/index.ts');
    writeFileSync(changed, readFileSync(changed, 'utf8'));
    expect((await launch(['--help'])).code).toBe(0);
    expect(statSync(cliBundle()).mtimeMs).toBeGreaterThan(before);
  });

  it('never runs a stale bundle: a source that does not compile fails with esbuild\'s message', async () => {
    const errors = join(copy, 'packages/cli/src/errors.ts');
    const good = readFileSync(errors, 'utf8');
    writeFileSync(errors, `${good}\nexport const broken = ;\n`);
    try {
      const result = await launch(['--help']);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toContain('packages/cli/src/errors.ts');
      expect(result.stderr).toContain('Unexpected ";"');
      expect(result.stderr.trimEnd().split('\n').at(-1)).toBe('pixelflow: packages/cli/dist/pixelflow.mjs not built: 1 error from esbuild (above)');
    } finally {
      writeFileSync(errors, good);
    }
    expect((await launch(['--help'])).code).toBe(0);
  });

  it('reports an internal error with a stack trace that names the TypeScript source', async () => {
    const main = join(copy, 'packages/cli/src/main.ts');
    const good = readFileSync(main, 'utf8');
    const entry = 'async function main(argv: readonly string[]): Promise<number> {\n';
    expect(good).toContain(entry);
    writeFileSync(main, good.replace(entry, `${entry}  throw new Error('boom');\n`));
    try {
      const line = good.slice(0, good.indexOf(entry)).split('\n').length + 1;
      const result = await launch(['--help']);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/^pixelflow: internal error: Error: boom\n {4}at main \(/);
      expect(result.stderr).toContain(`(${join(copy, 'packages/cli/src/main.ts')}:${line}:`);
    } finally {
      writeFileSync(main, good);
    }
  });

  it('refuses to build a bundle that would not find a package its sources import', async () => {
    // packages/schemas imports zod; without the CLI's own link to it the bundle could not load it
    // (pnpm's strict node_modules), whatever the root's devDependencies provide. Other packages the
    // CLI bundles import zod too (packages/queue, for \`pixelflow keys\`); whichever the bundler
    // reaches first is the one named.
    rmSync(join(copy, 'packages/cli/node_modules/zod'));
    const schemas = join(copy, 'packages/schemas/src/index.ts');
    writeFileSync(schemas, readFileSync(schemas, 'utf8'));
    const result = await launch(['--help']);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(
      /^pixelflow: packages\/cli\/dist\/pixelflow\.mjs:\n {2}packages\/\w+\/src\/\S+\.ts imports zod, but packages\/cli\/dist\/pixelflow\.mjs cannot find it: packages\/cli\/package\.json must depend on the same zod /,
    );
  });
});
