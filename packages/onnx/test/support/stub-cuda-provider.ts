import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { findLibrary } from '../../src/cuda-provider.ts';

// Real ELF shared libraries built with the system C compiler, standing in for onnxruntime's CUDA
// provider and the CUDA libraries it links, so the dynamic loader (ldd, dlopen) treats them as it
// treats the real 230 MB provider: same file names, same NEEDED entries, an onnxruntime version string.

/** What libonnxruntime_providers_cuda.so 1.29.0 (CUDA 13) links, in its NEEDED order. */
export const CUDA13_NEEDED = ['libcublasLt.so.13', 'libcublas.so.13', 'libcurand.so.10', 'libcudart.so.13', 'libcuda.so.1'];
/** What it loads at run time. */
export const CUDA13_LOADED = ['libcudnn.so.9'];

function compile(source: string, out: string, args: string[] = []): void {
  const file = join(dirname(out), '..', 'src', `${basename(out)}.c`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, source);
  execFileSync('cc', ['-shared', '-fPIC', '-o', out, file, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

export interface StubProvider {
  /** The provider's two files, as they sit beside libonnxruntime.so.1. */
  providerDir: string;
  /** Every CUDA library it needs, each a real shared library with that soname. */
  cudaDir: string;
}

/**
 * Builds `root/provider` (libonnxruntime_providers_{cuda,shared}.so built "for" `onnxruntimeVersion`,
 * linking `needed`) and `root/cuda` (a library for each name in `needed` and `loaded`).
 */
export function buildStubProvider(
  root: string,
  { onnxruntimeVersion = '1.29.0', needed = CUDA13_NEEDED, loaded = CUDA13_LOADED } = {},
): StubProvider {
  const providerDir = join(root, 'provider');
  const cudaDir = join(root, 'cuda');
  mkdirSync(providerDir, { recursive: true });
  mkdirSync(cudaDir, { recursive: true });
  for (const name of [...needed, ...loaded]) {
    compile(`int ${name.replace(/\W/g, '_')}(void) { return 0; }\n`, join(cudaDir, name), [`-Wl,-soname,${name}`]);
  }
  // onnxruntime compiles its version into each library as a NUL-terminated string.
  compile(
    `const char onnxruntime_version[] __attribute__((used)) = "\\0" "${onnxruntimeVersion}";\nint GetProvider(void) { return 0; }\n`,
    join(providerDir, 'libonnxruntime_providers_cuda.so'),
    ['-Wl,--no-as-needed', `-L${cudaDir}`, ...needed.map((name) => `-l:${name}`)],
  );
  // onnxruntime calls Provider_SetHost in the shared library before it opens the CUDA one.
  compile('void Provider_SetHost(void *host) { (void)host; }\n', join(providerDir, 'libonnxruntime_providers_shared.so'));
  return { providerDir, cudaDir };
}

/**
 * The first library the provider needs that this machine lacks outside LD_LIBRARY_PATH, for tests
 * that take one away. Every machine without a GPU lacks at least the driver's libcuda.so.1.
 */
export function libraryThisMachineLacks(): string {
  const missing = [...CUDA13_NEEDED, ...CUDA13_LOADED].find((name) => findLibrary(name, { ...process.env, LD_LIBRARY_PATH: '' }) === null);
  if (missing === undefined) throw new Error('this machine has every CUDA library; these tests need one it lacks');
  return missing;
}
