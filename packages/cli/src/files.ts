import { constants } from 'node:fs';
import { access, mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { CliError, UsageError } from './errors.ts';

// Output files of the CLI: checked before any long work starts, written so that an interrupted
// or failed run never leaves a truncated or partial set behind.
// Plus the names of .npy dtypes as users know them.

export function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Checks, without creating anything, that `dir` is a folder or can be created
 * as one: a file in its way or an unwritable parent fails now, not after a
 * long sampling run. Returns the absolute path.
 */
export async function checkFolder(flag: string, dir: string, command: string): Promise<string> {
  const usage = (message: string): UsageError => new UsageError(message, { command });
  const abs = resolve(dir);
  let probe = abs;
  for (;;) {
    // ENOTDIR: a file sits somewhere on the way; the walk up finds and names it.
    const stats = await stat(probe).catch((error: unknown) =>
      errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR' ? null : Promise.reject(error),
    );
    if (stats) {
      if (!stats.isDirectory()) {
        throw usage(probe === abs ? `${flag} ${dir} exists and is not a folder` : `${flag} ${dir}: ${probe} is not a folder`);
      }
      try {
        await access(probe, constants.W_OK);
      } catch {
        throw usage(`${flag} ${dir}: ${probe} is not writable`);
      }
      return abs;
    }
    const parent = dirname(probe);
    if (parent === probe) return abs;
    probe = parent;
  }
}

export async function createFolder(flag: string, dir: string, command: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    throw new CliError(`${flag}: cannot create ${dir}: ${(error as Error).message}`, 1, { command });
  }
}

/**
 * Writes every file under a temporary name first and renames them into place
 * only when all are written and no interrupt came, so an interrupted run never
 * leaves a truncated or partial set of files.
 */
export async function writeAll(dir: string, files: readonly { name: string; data: Uint8Array }[], signal: AbortSignal): Promise<string[]> {
  const temporary = files.map((file) => join(dir, `.${file.name}.${process.pid}.tmp`));
  try {
    await Promise.all(files.map((file, i) => writeFile(temporary[i] as string, file.data)));
    signal.throwIfAborted();
    const paths: string[] = [];
    for (const [i, file] of files.entries()) {
      const path = join(dir, file.name);
      await rename(temporary[i] as string, path);
      paths.push(path);
    }
    return paths;
  } finally {
    await Promise.all(temporary.map((path) => rm(path, { force: true })));
  }
}

/** The PNG of image `index` of a generation: by its seed, so that runs with other seeds sit side by side. */
export function pngFileName(seed: number, index: number): string {
  return `pixelflow-${seed}-${String(index).padStart(2, '0')}.png`;
}

export function pngFileNames(seed: number, count: number): string[] {
  return Array.from({ length: count }, (_, i) => pngFileName(seed, i));
}

/** Files of these names already in `dir` would be replaced: a usage error (the caller offers --force). */
export async function refuseToReplace(dir: string, names: readonly string[], command: string): Promise<void> {
  const present = (await Promise.all(names.map(async (name) => ((await stat(join(dir, name)).catch(() => null)) ? name : null)))).filter((name) => name !== null);
  if (present.length === 0) return;
  const more = present.length > 1 ? ` and ${present.length - 1} more` : '';
  throw new UsageError(`${join(dir, present[0] as string)}${more} already exist; pass --force to replace them (nothing written)`, { command });
}

const NPY_DTYPE_NAMES: Record<string, string> = { '<f4': 'float32', '<f8': 'float64', '<i8': 'int64', '<i4': 'int32', '|u1': 'uint8', '|b1': 'bool' };

/** An .npy dtype as users know it: `<f4` -> `float32`. */
export function npyDtypeName(dtype: string): string {
  return NPY_DTYPE_NAMES[dtype] ?? dtype;
}
