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
// tsconfig.base.json and build.mjs itself (how bundles are made). pnpm-lock.yaml is not an
// input: other packages stay outside the bundles, imported by name, so a changed lockfile changes
// what Node loads next to the bundle, not the bundle.

import { readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The repository root: this file is scripts/compiled.mjs. */
export const REPO = fileURLToPath(new URL('../', import.meta.url));

/**
 * @typedef {object} Bundle
 * @property {'cli' | 'api' | 'worker'} name
 * @property {string} entry  the TypeScript entry point, relative to the repository root
 * @property {string} out    the bundle, relative to the repository root (its .map and .meta.json beside it)
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

/** Absolute path of a bundle's output. @param {Bundle} b */
export function bundlePath(b) {
  return join(REPO, b.out);
}

/** esbuild's metafile of a bundle, beside it. @param {Bundle} b */
export function metafilePath(b) {
  return bundlePath(b).replace(/\.mjs$/, '.meta.json');
}

/**
 * Every file a bundle was built from, relative to the repository root, given its metafile's
 * inputs: `required` ones must exist (a deleted source or package.json means rebuild), `optional`
 * ones matter only while they exist.
 * @param {readonly string[]} inputs
 */
export function dependenciesOf(inputs) {
  const required = new Set([...inputs, 'scripts/build.mjs']);
  const optional = new Set(['tsconfig.base.json']);
  for (const input of inputs) {
    const pkg = /^(packages|services)\/[^/]+\//.exec(input)?.[0];
    if (pkg) {
      required.add(`${pkg}package.json`);
      optional.add(`${pkg}tsconfig.json`);
    }
  }
  return { required: [...required], optional: [...optional] };
}

/** mtime in ms, or null for a file that is not there. @param {string} path */
function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch (error) {
    if (/** @type {NodeJS.ErrnoException} */ (error).code === 'ENOENT') return null;
    throw error;
  }
}

/**
 * Why `b` must be rebuilt, or null when it is fresh.
 * @param {Bundle} b
 * @returns {string | null}
 */
export function staleReason(b) {
  const built = mtime(bundlePath(b));
  if (built === null) return `${b.out} is not built`;
  /** @type {{ inputs: Record<string, unknown>, outputs: Record<string, unknown> }} */
  let metafile;
  try {
    metafile = JSON.parse(readFileSync(metafilePath(b), 'utf8'));
  } catch {
    return `its metafile ${metafilePath(b)} is missing or unreadable`;
  }
  for (const output of Object.keys(metafile.outputs)) {
    if (mtime(join(REPO, output)) === null) return `${output} is missing`;
  }
  const { required, optional } = dependenciesOf(Object.keys(metafile.inputs));
  for (const file of [...required, ...optional]) {
    const changed = mtime(join(REPO, file));
    if (changed === null && required.includes(file)) return `${file} is gone`;
    if (changed !== null && changed >= built) return `${file} changed`;
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
