import { spawnSync } from 'node:child_process';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join } from 'node:path';

// onnxruntime's CUDA execution provider, as files on disk: where it has to be, what it is built
// for and which of the libraries it needs this machine lacks. onnxruntime loads the provider with
// dlopen from the folder of libonnxruntime.so.1, and when that fails its binding says only
// "Failed to load shared library"; these checks name what is missing instead. Used by OnnxModel
// (why a CUDA session could not start), `pixelflow cuda check|install` and the worker image's build.

/** The provider's two libraries, as onnxruntime looks them up beside libonnxruntime.so.1. */
export const CUDA_PROVIDER_FILES = ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'] as const;
export const CUDA_PROVIDER_LIBRARY = 'libonnxruntime_providers_cuda.so';

/**
 * Libraries the provider opens at run time rather than links (so ldd cannot see them), by the
 * CUDA major it links. onnxruntime 1.29's CUDA 13 build loads cuDNN 9 on first use.
 */
const RUNTIME_LOADED: Record<number, readonly string[]> = { 13: ['libcudnn.so.9'], 12: ['libcudnn.so.9'] };

/** How to get a library that was not found, by its name's stem. */
const WHERE_FROM: readonly [RegExp, string][] = [
  [/^libcuda\.so/, 'the NVIDIA driver (580 or newer for CUDA 13)'],
  [/^libcudnn/, 'cuDNN 9 for CUDA {cuda}'],
  [/^lib(cudart|cublas|cublasLt|curand|cufft|nvrtc)\.so/, 'the CUDA {cuda} runtime libraries'],
];

export interface CudaProviderReport {
  /** The folder of libonnxruntime.so.1, where the provider must be. */
  dir: string;
  /** onnxruntime-node's version, which the provider must have been built for. */
  onnxruntimeVersion: string;
  /** Provider files absent from `dir`. */
  missingFiles: string[];
  /** The CUDA major the provider links (libcudart.so.N); null when not installed or not linked. */
  cudaMajor: number | null;
  /** Libraries the provider links or loads that the dynamic loader cannot find, in ldd's order. */
  notFound: string[];
}

/** The folder of onnxruntime-node's native libraries for this platform (exists or not). */
export function onnxruntimeLibDir(): string {
  const require = createRequire(import.meta.url);
  const packageDir = dirname(require.resolve('onnxruntime-node/package.json'));
  return join(packageDir, 'bin', 'napi-v6', process.platform, process.arch);
}

/** onnxruntime-node's version (its binding and libonnxruntime.so.1 ship in the same package). */
export function onnxruntimeNodeVersion(): string {
  const require = createRequire(import.meta.url);
  const manifest = JSON.parse(readFileSync(require.resolve('onnxruntime-node/package.json'), 'utf8')) as { version: string };
  return manifest.version;
}

/**
 * The onnxruntime version a native library was built for, read from the version string onnxruntime
 * compiles into each of its libraries (a NUL-terminated "1.NN.N"); null when there is not exactly one.
 */
export async function onnxruntimeVersionOf(file: string): Promise<string | null> {
  const found = new Set<string>();
  const pattern = /\0(1\.[1-9]\d\.\d{1,3})\0/g;
  let carry = '';
  for await (const chunk of createReadStream(file, { highWaterMark: 8 << 20 })) {
    const text = carry + (chunk as Buffer).toString('latin1');
    for (const match of text.matchAll(pattern)) found.add(match[1] as string);
    carry = text.slice(-16); // a match straddling two chunks is found in the next one
  }
  return found.size === 1 ? ([...found][0] as string) : null;
}

/** Each library `file` links, with where the loader finds it (null: not found); `ldd`'s view. */
export function linkedLibraries(file: string, env: NodeJS.ProcessEnv = process.env): { name: string; path: string | null }[] {
  const result = spawnSync('ldd', [file], { encoding: 'utf8', env });
  if (result.error) throw new Error(`cannot run ldd on ${file}: ${result.error.message}`);
  const libraries: { name: string; path: string | null }[] = [];
  for (const line of result.stdout.split('\n')) {
    const match = /^\s*(\S+) => (not found|\S+)/.exec(line);
    if (match) libraries.push({ name: match[1] as string, path: match[2] === 'not found' ? null : (match[2] as string) });
  }
  if (libraries.length === 0) {
    throw new Error(`ldd could not read ${file}: ${(result.stderr || result.stdout).trim().split('\n')[0] ?? 'no output'}`);
  }
  return libraries;
}

/** The folders the dynamic loader searches for a dlopen()ed name: LD_LIBRARY_PATH, then ld.so's cache. */
function loaderCache(env: NodeJS.ProcessEnv): Map<string, string> {
  const found = new Map<string, string>();
  for (const ldconfig of ['/sbin/ldconfig', '/usr/sbin/ldconfig']) {
    if (!existsSync(ldconfig)) continue;
    const listing = spawnSync(ldconfig, ['-p'], { encoding: 'utf8', env });
    for (const line of listing.stdout?.split('\n') ?? []) {
      const match = /^\s*(\S+) \(.*\) => (\S+)$/.exec(line);
      if (match && !found.has(match[1] as string)) found.set(match[1] as string, match[2] as string);
    }
    break;
  }
  return found;
}

/** Where the loader would find `name` when a library dlopen()s it; null when it would not. */
export function findLibrary(name: string, env: NodeJS.ProcessEnv = process.env): string | null {
  for (const dir of (env.LD_LIBRARY_PATH ?? '').split(delimiter).filter(Boolean)) {
    if (existsSync(join(dir, name))) return join(dir, name);
  }
  return loaderCache(env).get(name) ?? null;
}

function missingProviderFiles(dir: string): string[] {
  return CUDA_PROVIDER_FILES.filter((file) => !existsSync(join(dir, file)));
}

function notInstalledProblem(dir: string, missingFiles: readonly string[]): string {
  return (
    `onnxruntime's CUDA execution provider is not installed: ${missingFiles.join(' and ')} ` +
    `missing from ${dir} (run \`pnpm pixelflow cuda install\`, see deploy/README.md)`
  );
}

/**
 * Why the provider certainly cannot load because its files are absent (cheap: no ldd); null if
 * present, and null off Linux, whose file names these are (there onnxruntime is left to try).
 */
export function cudaProviderNotInstalled(dir: string = onnxruntimeLibDir()): string | null {
  if (process.platform !== 'linux') return null;
  const missingFiles = missingProviderFiles(dir);
  return missingFiles.length > 0 ? notInstalledProblem(dir, missingFiles) : null;
}

/** Inspects the provider in `dir` (default: beside onnxruntime-node's libonnxruntime.so.1). */
export function inspectCudaProvider(dir: string = onnxruntimeLibDir(), env: NodeJS.ProcessEnv = process.env): CudaProviderReport {
  const onnxruntimeVersion = onnxruntimeNodeVersion();
  const missingFiles = missingProviderFiles(dir);
  if (missingFiles.includes(CUDA_PROVIDER_LIBRARY)) {
    return { dir, onnxruntimeVersion, missingFiles, cudaMajor: null, notFound: [] };
  }
  const linked = linkedLibraries(join(dir, CUDA_PROVIDER_LIBRARY), env);
  const cudart = linked.map((lib) => /^libcudart\.so\.(\d+)$/.exec(lib.name)).find(Boolean);
  const cudaMajor = cudart ? Number(cudart[1]) : null;
  const notFound = linked.filter((lib) => lib.path === null).map((lib) => lib.name);
  for (const name of RUNTIME_LOADED[cudaMajor ?? -1] ?? []) {
    if (findLibrary(name, env) === null) notFound.push(name);
  }
  return { dir, onnxruntimeVersion, missingFiles, cudaMajor, notFound };
}

/** Where a missing library comes from, for the operator who has to install it. */
function source(name: string, cudaMajor: number | null): string {
  const entry = WHERE_FROM.find(([pattern]) => pattern.test(name));
  return (entry?.[1] ?? 'its package').replace(' {cuda}', cudaMajor === null ? '' : ` ${cudaMajor}`);
}

/** The NVIDIA driver's own library: on the host, and in a container only at run time. */
export const DRIVER_LIBRARY = 'libcuda.so.1';

export interface CudaProviderExpectations {
  /** The CUDA major of the machine or image the provider is meant for. */
  cudaMajor?: number;
  /**
   * The driver's libcuda.so.1 is mounted from the host at run time (the NVIDIA Container Toolkit
   * does that), so a container image's build cannot find it and need not.
   */
  driverFromHost?: boolean;
}

/** What stops the provider in `report` from loading, one sentence each (empty: nothing known). */
export function cudaProviderProblems(report: CudaProviderReport, expect: CudaProviderExpectations = {}): string[] {
  if (report.missingFiles.length > 0) return [notInstalledProblem(report.dir, report.missingFiles)];
  const problems: string[] = [];
  const expectedCudaMajor = expect.cudaMajor;
  const notFound = report.notFound.filter((name) => !(expect.driverFromHost && name === DRIVER_LIBRARY));
  if (expectedCudaMajor !== undefined && report.cudaMajor !== expectedCudaMajor) {
    problems.push(
      `${CUDA_PROVIDER_LIBRARY} links CUDA ${report.cudaMajor ?? 'of no known version'} but this machine has CUDA ` +
        `${expectedCudaMajor}: use a provider built for CUDA ${expectedCudaMajor}, or a CUDA ${report.cudaMajor ?? ''} base`.trimEnd(),
    );
  }
  if (notFound.length > 0) {
    const sources = [...new Set(notFound.map((name) => source(name, report.cudaMajor)))];
    problems.push(
      `${CUDA_PROVIDER_LIBRARY} needs ${notFound.join(', ')}, which the dynamic loader cannot find: ` +
        `install ${sources.join(' and ')}, or add their folder to LD_LIBRARY_PATH`,
    );
  }
  return problems;
}

/** The one-line reason a CUDA session could not start, from the files alone; null if they look fine. */
export function explainCudaProviderFailure(dir: string = onnxruntimeLibDir(), env: NodeJS.ProcessEnv = process.env): string | null {
  try {
    const problems = cudaProviderProblems(inspectCudaProvider(dir, env));
    return problems.length > 0 ? problems.join('; ') : null;
  } catch {
    return null; // the diagnosis is a courtesy: never let it hide the original error
  }
}
