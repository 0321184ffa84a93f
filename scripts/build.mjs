// @ts-check
// `pnpm build` (and `pnpm install`, which runs it): bundles the CLI, the API and the worker with
// esbuild into ES modules (packages/cli/dist/pixelflow.mjs, services/<name>/dist/main.mjs, each
// with its source map and its build record, the files the launchers check; the CLI's commands in
// chunks of their own, loaded when they run), so that they start as plain JavaScript instead of
// being compiled by tsx on every start.
//
//   node scripts/build.mjs               every bundle
//   node scripts/build.mjs cli worker    some of them
//   node scripts/build.mjs --installed   those whose package this install set up (postinstall)
//
// What a bundle holds: our own workspace code (@pixelflow/*), and nothing else. Every other
// package stays a plain `import 'name'` that Node resolves next to the bundle, so the bundle
// loads the same files the sources do; the build checks that it does (see `checkExternals`).
// Plain JavaScript, like compiled.mjs, because launchers rebuild a stale bundle without tsx.

import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { basename, dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { BUNDLES, REPO, bundlePath, outDir, recordPath } from './compiled.mjs';

/** @typedef {import('./compiled.mjs').Bundle} Bundle */
/** @typedef {import('./compiled.mjs').BuildRecord} BuildRecord */

/** '/'-separated relative path, as URLs and metafiles write them. @param {string} from @param {string} to */
function posixRelative(from, to) {
  return relative(from, to).split(sep).join('/');
}

/**
 * Inside a bundle `import.meta.url` is the bundle's URL, but our modules use it to find files
 * beside their source (the thread scripts, the embedded model, the repository root). So in our
 * own sources it becomes the URL of the original .ts file, relative to the bundle: every path
 * stays what it is when the sources run, and the checkout stays relocatable as a whole.
 * @param {string} outdir
 * @returns {esbuild.Plugin}
 */
function sourceUrlPlugin(outdir) {
  return {
    name: 'pixelflow-source-url',
    setup(build) {
      build.onLoad({ filter: /\.(ts|mts|js|mjs)$/ }, (args) => {
        if (args.path.split(sep).includes('node_modules')) return undefined;
        const source = readFileSync(args.path, 'utf8');
        // The other ways to ask where a module is would name the bundle's folder; refuse them
        // rather than build something whose paths differ from the sources'.
        const other = /import\.meta\.(dirname|filename|resolve)\b/.exec(source);
        if (other) {
          const line = source.slice(0, other.index).split('\n').length;
          return { errors: [{ text: `${other[0]} would name the bundle, not this file: use import.meta.url, which the build maps to this file`, location: { file: posixRelative(REPO, args.path), line, column: 0, lineText: source.split('\n')[line - 1] ?? '' } }] };
        }
        if (!source.includes('import.meta.url')) return undefined;
        const url = `new URL(${JSON.stringify(posixRelative(outdir, args.path))}, import.meta.url).href`;
        return { contents: source.replaceAll('import.meta.url', url), loader: /\.m?ts$/.test(args.path) ? 'ts' : 'js' };
      });
    },
  };
}

/**
 * @typedef {object} ExternalImport
 * @property {string} specifier  what the source imports ('fastify', 'ioredis/built/utils')
 * @property {string} importer   the absolute path of the source file importing it
 */

/**
 * Bundles @pixelflow/* (resolved through the workspace links to their sources) and leaves every
 * other bare import external, collecting those in `externals`. esbuild's `packages: 'external'`
 * would externalise @pixelflow/* too; their package.json `exports` point at .ts files that Node
 * cannot load.
 * @param {ExternalImport[]} externals
 * @returns {esbuild.Plugin}
 */
function externalPackagesPlugin(externals) {
  return {
    name: 'pixelflow-external-packages',
    setup(build) {
      build.onResolve({ filter: /^[^./]/ }, (args) => {
        if (args.kind === 'entry-point' || args.path.startsWith('@pixelflow/')) return undefined;
        if (!isBuiltin(args.path)) externals.push({ specifier: args.path, importer: args.importer });
        return { path: args.path, external: true };
      });
    },
  };
}

/** The package name of a bare specifier: 'a/b' -> 'a', '@s/a/b' -> '@s/a'. @param {string} specifier */
function packageName(specifier) {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier);
}

/**
 * The real folder of package `name` as Node finds it from a file in `dir`: the first
 * node_modules/<name> up the tree (Node then applies its `exports`; that part is the same from
 * anywhere), looking no higher than `top`. Null when there is none.
 * @param {string} name
 * @param {string} dir
 * @param {string} [top]
 */
function packageFolderFrom(name, dir, top) {
  for (let at = dir; ; at = dirname(at)) {
    const candidate = join(at, 'node_modules', name);
    try {
      if (statSync(candidate).isDirectory()) return realpathSync(candidate);
    } catch {
      // not here; one folder up
    }
    if (at === top || dirname(at) === at) return null;
  }
}

/**
 * The bundle imports each external package by name from its own folder, not from the source file
 * that imported it; with pnpm's strict node_modules these can differ (packages/onnx can import
 * onnxruntime-node, services/worker/dist cannot unless the worker depends on it too). The bundle's
 * own package must provide it: the root's devDependencies would do in a full checkout, but not in
 * an install of one service (`pnpm install --filter @pixelflow/worker...`, the images). Returns one
 * line per import that would load another copy, or nothing at all, from the bundle.
 * @param {Bundle} b
 * @param {readonly ExternalImport[]} externals
 */
function checkExternals(b, externals) {
  /** @type {Map<string, string>} one line per package */
  const problems = new Map();
  const from = outDir(b);
  const packageDir = join(REPO, b.entry, '../..');
  const manifest = posixRelative(REPO, join(packageDir, 'package.json'));
  for (const { specifier, importer } of externals) {
    const name = packageName(specifier);
    if (problems.has(name)) continue;
    const wanted = packageFolderFrom(name, dirname(importer));
    if (wanted === null) continue; // not installed for the source either: Node's own error at run time, as with tsx
    const found = packageFolderFrom(name, from, packageDir);
    if (found === wanted) continue;
    const what = found === null ? 'cannot find it' : `would load another copy (${posixRelative(REPO, found)})`;
    problems.set(name, `${posixRelative(REPO, importer)} imports ${name}, but ${b.out} ${what}: ${manifest} must depend on the same ${name} (${posixRelative(REPO, wanted)})`);
  }
  return [...problems.values()];
}

/**
 * Builds `bundles` (in parallel). See `buildOne` for how files are replaced.
 * @param {readonly Bundle[]} bundles
 * @param {{ logLevel?: 'silent' | 'error' | 'warning' }} [options]
 */
export async function buildBundles(bundles, options = {}) {
  await Promise.all(bundles.map((b) => buildOne(b, options.logLevel ?? 'warning')));
}

/**
 * What a bundle built from esbuild's `inputs` (relative to the repository root) depends on, for
 * its build record (compiled.mjs says why each): `inputs` must exist, `optional` ones matter only
 * while they exist.
 * @param {readonly string[]} inputs
 * @returns {Pick<BuildRecord, 'inputs' | 'optional'>}
 */
function dependenciesOf(inputs) {
  const required = new Set([...inputs, 'scripts/build.mjs']);
  const optional = new Set(['tsconfig.base.json']);
  for (const input of inputs) {
    const pkg = /^(packages|services)\/[^/]+\//.exec(input)?.[0];
    if (pkg) {
      required.add(`${pkg}package.json`);
      optional.add(`${pkg}tsconfig.json`);
    }
  }
  return { inputs: [...required], optional: [...optional] };
}

/** Files a build record lists as outputs, relative to the repository root; none when it cannot be read. @param {string} path */
function outputsOf(path) {
  try {
    return new Set(/** @type {BuildRecord} */ (JSON.parse(readFileSync(path, 'utf8'))).outputs);
  } catch {
    return new Set();
  }
}

/** Chunks (what a dynamic `import()` of our own code becomes) and their maps. */
const CHUNK = /^chunk-[A-Z0-9]+\.mjs(\.map)?$/;

/**
 * One bundle: its entry module, the chunks its dynamic imports load (content-hashed names), their
 * source maps and its build record. Every file is written under a temporary name and renamed into
 * place, the entry module last, so a process starting meanwhile runs the old build or the new one,
 * never half of one. The entry's mtime is set to when the build started: a source saved during the
 * build is newer than it, so the next start rebuilds again. Chunks of older builds are removed,
 * except those of the build just replaced: a process started from it moments ago may still import
 * them.
 * @param {Bundle} b
 * @param {'silent' | 'error' | 'warning'} logLevel
 */
async function buildOne(b, logLevel) {
  // Kernel file times can trail Date.now() by a clock tick; the margin keeps a file saved just as
  // the build starts from looking older than the bundle built without it.
  const started = Date.now() - 100;
  const outdir = outDir(b);
  const entry = bundlePath(b);
  /** @type {ExternalImport[]} */
  const externals = [];
  /** @type {esbuild.BuildResult<{ metafile: true, write: false }>} */
  let result;
  try {
    result = await esbuild.build({
      absWorkingDir: REPO,
      entryPoints: { [basename(entry, '.mjs')]: join(REPO, b.entry) },
      outdir,
      outExtension: { '.js': '.mjs' },
      // A command's modules, and the packages they import, load when it runs, not before
      // `pixelflow --help` can answer.
      splitting: true,
      chunkNames: 'chunk-[hash]',
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      // Class and function names stay what the sources say (error names, logs), whatever the bundle renames.
      keepNames: true,
      // Linked, without the sources inside: stack traces name the .ts files, which are right there.
      sourcemap: 'linked',
      sourcesContent: false,
      metafile: true,
      write: false,
      logLevel,
      plugins: [externalPackagesPlugin(externals), sourceUrlPlugin(outdir)],
    });
  } catch (error) {
    /** @type {esbuild.Message[] | undefined} */
    const errors = error instanceof Error && 'errors' in error ? /** @type {esbuild.BuildFailure} */ (error).errors : undefined;
    if (!errors) throw error;
    const first = errors[0];
    const where = first?.location ? `${first.location.file}:${first.location.line}:${first.location.column}: ` : '';
    // With a log level, esbuild has printed every message (with its source line) already.
    const detail = logLevel === 'silent' ? `: ${where}${first?.text ?? ''}` : ' (above)';
    throw new Error(`${b.out} not built: ${errors.length} error${errors.length === 1 ? '' : 's'} from esbuild${detail}`);
  }
  const problems = checkExternals(b, externals);
  if (problems.length > 0) throw new Error(`${b.out}:\n  ${problems.join('\n  ')}`);
  for (const file of result.outputFiles) {
    if (file.path !== entry && file.path !== `${entry}.map` && !CHUNK.test(basename(file.path))) {
      throw new Error(`${b.out}: esbuild wrote ${file.path}, which is neither the bundle nor a chunk`);
    }
  }

  const outputs = Object.keys(result.metafile.outputs);
  /** @type {BuildRecord} */
  const record = { ...dependenciesOf(Object.keys(result.metafile.inputs)), outputs };
  const previous = outputsOf(recordPath(b));
  mkdirSync(outdir, { recursive: true });
  const suffix = `.tmp-${process.pid}`;
  const files = [...result.outputFiles.map((f) => /** @type {const} */ ([f.path, f.contents])), /** @type {const} */ ([recordPath(b), `${JSON.stringify(record)}\n`])];
  // The entry module last: until it is renamed, the old one (or none) is what a launcher sees.
  files.sort(([x], [y]) => Number(x === entry) - Number(y === entry));
  for (const [path, contents] of files) writeFileSync(path + suffix, contents);
  utimesSync(entry + suffix, started / 1000, started / 1000);
  for (const [path] of files) renameSync(path + suffix, path);

  const current = new Set(outputs);
  for (const name of readdirSync(outdir)) {
    const path = join(outdir, name);
    const relativePath = posixRelative(REPO, path);
    if (!CHUNK.test(name) || current.has(relativePath) || previous.has(relativePath)) continue;
    // A chunk written after this build started belongs to a concurrent one.
    try {
      if (statSync(path).mtimeMs < started) rmSync(path, { force: true });
    } catch {
      // removed meanwhile
    }
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const installedOnly = args.includes('--installed');
  const names = args.filter((a) => a !== '--installed');
  const unknown = names.filter((n) => !BUNDLES.some((b) => b.name === n));
  if (unknown.length > 0) {
    process.stderr.write(`pixelflow build: no bundle named ${unknown.join(', ')} (usage: node scripts/build.mjs [--installed] [${BUNDLES.map((b) => b.name).join('|')}...])\n`);
    process.exit(2);
  }
  let chosen = names.length === 0 ? BUNDLES : BUNDLES.filter((b) => names.includes(b.name));
  if (installedOnly) {
    // `pnpm install`'s postinstall: an install of some packages only (`--filter @pixelflow/api...`,
    // as the images do) builds the bundles it installed the packages of, and leaves the others.
    const skipped = chosen.filter((b) => !existsSync(join(REPO, b.entry, '../../node_modules')));
    if (skipped.length > 0) process.stderr.write(`pixelflow build: not building ${skipped.map((b) => b.out).join(', ')}: not installed here\n`);
    chosen = chosen.filter((b) => !skipped.includes(b));
  }
  const start = performance.now();
  try {
    await buildBundles(chosen);
  } catch (error) {
    process.stderr.write(`pixelflow build: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
  const took = Math.round(performance.now() - start);
  process.stderr.write(`pixelflow build: ${chosen.map((b) => b.out).join(', ')} in ${took} ms\n`);
}
