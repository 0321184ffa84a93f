import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { cpus, homedir } from 'node:os';
import { join } from 'node:path';
import type { ModelDir } from '@pixelflow/formats';
import { onnxruntimeNodeVersion } from './cuda-provider.ts';
import type { GraphOptimizationLevel } from './onnx-session-protocol.ts';

// A CPU session's optimised graph with its weights already prepacked for onnxruntime's matrix
// kernels, saved once and memory-mapped by later loads. Prepacking is most of a CPU session's
// creation (about 0.4 s of 0.8 s for a 138 MB model here), and the saved form skips it. It is only
// valid where it was made: the graph carries this CPU's layout choices and the packed weights this
// CPU's kernel format, so the key names the CPU, onnxruntime's version, the optimisation level and
// the model files as they are on disk.

/** Where caches go unless told: $XDG_CACHE_HOME/pixelflow/onnx-sessions, or ~/.cache/pixelflow/onnx-sessions. */
export function defaultSessionCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env['XDG_CACHE_HOME'] || join(homedir(), '.cache');
  return join(base, 'pixelflow', 'onnx-sessions');
}

/** The CPU as far as kernel choice goes: model name, architecture and (on Linux) its feature flags. */
function cpuSignature(): string {
  let flags = '';
  try {
    flags = /^flags\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
  } catch {
    // Not Linux: the model name and architecture are what there is.
  }
  return `${process.arch} ${cpus()[0]?.model ?? 'unknown'} ${flags}`;
}

function fileIdentity(path: string): string {
  const stats = statSync(path);
  return `${path} ${stats.size} ${stats.mtimeMs}`;
}

/**
 * The cache entry's name for `model` on this machine: a new conversion (other files, other times),
 * another onnxruntime, another CPU or another optimisation level each make another entry.
 */
export function sessionCacheKey(model: ModelDir, graphOptimizationLevel: GraphOptimizationLevel): string {
  const { manifest } = model;
  const files = [model.modelPath, ...(manifest.external_data_file ? [join(model.dir, manifest.external_data_file)] : [])];
  const identity = [
    manifest.source.weights_sha256,
    ...files.map(fileIdentity),
    `onnxruntime-node ${onnxruntimeNodeVersion()}`,
    `optimization ${graphOptimizationLevel}`,
    cpuSignature(),
  ].join('\n');
  return `${manifest.name.replace(/[^A-Za-z0-9_.-]/g, '-')}-${createHash('sha256').update(identity).digest('hex').slice(0, 24)}`;
}
