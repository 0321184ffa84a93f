// @ts-check
// The compiled entry points: which bundles exist, whether one is stale, and rebuilding it when it
// is. The CLI's launcher (packages/cli/bin/pixelflow.mjs), `pnpm start` and the service
// benchmarks run these bundles instead of the TypeScript sources, so that no process pays for
// compiling TypeScript at start-up (tsx: about 0.7 s on a 2-core machine).
//
// Plain JavaScript on purpose, like the thread scripts: the launcher imports it with Node's own
// loader, before anything can compile TypeScript. It loads nothing but node:fs and node:path
// unless a bundle is stale; only then is build.mjs (and with it esbuild) imported.
//
// A bundle is fresh when it exists and no file it was built from is newer than it: every input
// esbuild lists in the bundle's metafile, the package.json and tsconfig.json of each workspace
// package those inputs belong to (exports, dependencies, compiler options), the shared
// tsconfig.base.json and build.mjs itself (how bundles are made). build.mjs derives that list once
// and writes it beside the bundle (its build record), so a start reads a short list and stats
// those files instead of parsing esbuild's whole metafile and deriving the list again.
// pnpm-lock.yaml is not an input: other packages stay outside the bundles, imported by name, so a
// changed lockfile changes what Node loads next to the bundle, not the bundle.

import { readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The repository root: this file is scripts/compiled.mjs. */
export const REPO = fileURLToPath(new URL('../', import.meta.url));

/**
 * @typedef {object} Bundle
 * @property {'cli' | 'api' | 'worker'} name
 * @property {string} entry  the TypeScript entry point, relative to the repository root
 * @property {string} out    the bundle, relative to the repository root (its .map and .build.json beside it)
 */

/** @type {readonly Bundle[]} */
export const BUNDLES = [
  { name: 'cli', entry: 'packages/cli/src/main.ts', out: 'packages/cli/dist/pixelflow.mjs' },
  { name: 'api', entry: 'services/api/src/main.ts', out: 'services/api/dist/main.mjs' },
  { name: 'worker', entry: 'services/worker/src/main.ts', out: 'services/worker/dist/main.mjs' },
];

/** @param {Bundle['name']} name */
export function bundle(name) {
  const found = BUNDLES.find((b) => b.name === name);
  if (!found) throw new Error(`no bundle named ${name} (bundles: ${BUNDLES.map((b) => b.name).join(', ')})`);
  return found;
}

/**
 * The node arguments that run a service's bundle, as `pnpm start`, the benchmarks and the tests
 * start it: source maps on, so stack traces name the .ts files.
 * @param {'api' | 'worker'} name
 */
export function serviceNodeArgs(name) {
  return ['--enable-source-maps', bundlePath(bundle(name))];
}

/** Absolute path of a bundle's output. @param {Bundle} b */
export function bundlePath(b) {
  return join(REPO, b.out);
}

/**
 * @typedef {object} BuildRecord  what build.mjs writes beside a bundle for the staleness check;
 *   every path relative to the repository root
 * @property {string[]} inputs    files the bundle was built from: each must exist and be older than it
 * @property {string[]} optional  files that matter only while they exist (tsconfig.json files)
 * @property {string[]} outputs   what the build wrote: the bundle, its chunks and their source maps
 */

/** The build record of a bundle, beside it. @param {Bundle} b */
export function recordPath(b) {
  return bundlePath(b).replace(/\.mjs$/, '.build.json');
}

/** mtime in ms, or undefined for a file that is not there. @param {string} path */
function mtime(path) {
  return statSync(path, { throwIfNoEntry: false })?.mtimeMs;
}

/** The build record of `b`, or null when it is missing or not one. @param {Bundle} b @returns {BuildRecord | null} */
function readRecord(b) {
  try {
    const record = JSON.parse(readFileSync(recordPath(b), 'utf8'));
    return [record.inputs, record.optional, record.outputs].every(Array.isArray) ? record : null;
  } catch {
    return null;
  }
}

/**
 * Why `b` must be rebuilt, or null when it is fresh.
 * @param {Bundle} b
 * @returns {string | null}
 */
export function staleReason(b) {
  const built = mtime(bundlePath(b));
  if (built === undefined) return `${b.out} is not built`;
  const record = readRecord(b);
  if (record === null) return `its build record ${recordPath(b)} is missing or unreadable`;
  for (const output of record.outputs) {
    if (output !== b.out && mtime(join(REPO, output)) === undefined) return `${output} is missing`;
  }
  for (const file of record.inputs) {
    const changed = mtime(join(REPO, file));
    if (changed === undefined) return `${file} is gone`;
    if (changed >= built) return `${file} changed`;
  }
  for (const file of record.optional) {
    const changed = mtime(join(REPO, file));
    if (changed !== undefined && changed >= built) return `${file} changed`;
  }
  return null;
}

/**
 * Rebuilds whichever of `bundles` is stale (all at once, with build.mjs). Resolves with the
 * names rebuilt; rejects with an Error whose message says what failed (esbuild prints its own
 * messages at `logLevel`, default 'warning').
 * @param {readonly Bundle[]} bundles
 * @param {{ logLevel?: 'silent' | 'error' | 'warning' }} [options]
 */
export async function ensureFresh(bundles, options = {}) {
  const stale = bundles.filter((b) => staleReason(b) !== null);
  if (stale.length === 0) return [];
  const { buildBundles } = await import('./build.mjs');
  await buildBundles(stale, options);
  return stale.map((b) => b.name);
}

/**
 * What a launcher does: rebuilds the bundle if it is stale, then runs it in this process (its
 * stack traces mapped to the TypeScript sources). A build that fails prints esbuild's messages
 * and exits 1, as running the broken source with tsx would.
 * @param {Bundle['name']} name
 */
export async function launch(name) {
  const b = bundle(name);
  try {
    await ensureFresh([b], { logLevel: 'error' });
  } catch (error) {
    // `pixelflow: ...` for the CLI, `pixelflow api: ...` as the services say their own errors.
    process.stderr.write(`pixelflow${name === 'cli' ? '' : ` ${name}`}: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
  process.setSourceMapsEnabled(true);
  await import(pathToFileURL(bundlePath(b)).href);
}

/** The folder a bundle is written to. @param {Bundle} b */
export function outDir(b) {
  return dirname(bundlePath(b));
}
