import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseModelManifest, type ModelManifest } from '@pixelflow/schemas';
import { scheduleFor } from '@pixelflow/sampler';

// A model folder is what `pixelflow convert` produces: pixelflow.json next to
// the ONNX file (and its external weights for models over 2 GB). Loading it
// fails fast with one line that says which file is wrong and why, because the
// first thing an operator sees of a bad model is this message.

export const MANIFEST_FILE = 'pixelflow.json';

/**
 * The embedded default model: our small MNIST PixelFlow, shipped in the repository
 * (models/pixelflow-mnist), so that every entry point works offline on a fresh clone.
 */
export const DEFAULT_MODEL_DIR = fileURLToPath(new URL('../../../models/pixelflow-mnist', import.meta.url));

export interface ModelDir {
  /** Absolute path of the folder. */
  dir: string;
  manifest: ModelManifest;
  /** Absolute path of the ONNX file. */
  modelPath: string;
  /** Absolute path of the external weights file, when the manifest names one. */
  externalDataPath: string | null;
}

export class ModelDirError extends Error {
  override name = 'ModelDirError';
}

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

async function requireFile(path: string, what: string): Promise<void> {
  const stats = await stat(path).catch((error: unknown) => {
    if (errorCode(error) === 'ENOENT') return null;
    throw error;
  });
  if (!stats) throw new ModelDirError(`${what} not found: ${path}`);
  if (!stats.isFile()) throw new ModelDirError(`${what} is not a file: ${path}`);
}

/** Reads and validates a converted model folder; throws ModelDirError with a one-line message. */
export async function loadModelDir(dir: string): Promise<ModelDir> {
  const absDir = resolve(dir);
  const dirStats = await stat(absDir).catch((error: unknown) => {
    if (errorCode(error) === 'ENOENT') return null;
    throw new ModelDirError(`cannot read model folder ${absDir}: ${(error as Error).message}`);
  });
  if (!dirStats) throw new ModelDirError(`model folder not found: ${absDir}`);
  if (!dirStats.isDirectory()) throw new ModelDirError(`model folder is not a folder: ${absDir}`);

  const manifestPath = join(absDir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(manifestPath, 'utf8');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') {
      throw new ModelDirError(
        `${manifestPath} not found: ${absDir} is not a converted PixelFlow model (run pixelflow convert)`,
      );
    }
    throw new ModelDirError(`${manifestPath}: cannot read: ${(error as Error).message}`);
  }

  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ModelDirError(`${manifestPath}: invalid JSON: ${(error as Error).message}`);
  }
  let manifest: ModelManifest;
  try {
    manifest = parseModelManifest(json, manifestPath);
  } catch (error) {
    throw new ModelDirError((error as Error).message, { cause: error });
  }

  try {
    scheduleFor(manifest);
  } catch (error) {
    // A schedule we cannot reproduce would sample with numbers nobody can account for.
    throw new ModelDirError(`${manifestPath}: ${(error as Error).message}`, { cause: error });
  }

  const modelPath = join(absDir, manifest.model_file);
  await requireFile(modelPath, `model file of ${manifestPath}`);
  const externalDataPath = manifest.external_data_file === null ? null : join(absDir, manifest.external_data_file);
  if (externalDataPath !== null) await requireFile(externalDataPath, `external weights of ${manifestPath}`);

  return { dir: absDir, manifest, modelPath, externalDataPath };
}
