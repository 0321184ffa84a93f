import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The CLI runs from source inside the repository (no build step), so the
// repository root is a fixed distance from this file: packages/cli/src/.
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/** Root of the Python package `pixelflow` (model, export, reference sampler). */
export const pythonSourceDir = join(repoRoot, 'pytorch');
