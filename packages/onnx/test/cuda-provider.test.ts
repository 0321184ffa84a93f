import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, realpathSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cudaProviderNotInstalled,
  cudaProviderProblems,
  explainCudaProviderFailure,
  findLibrary,
  inspectCudaProvider,
  onnxruntimeLibDir,
  onnxruntimeNodeVersion,
  onnxruntimeVersionOf,
} from '../src/cuda-provider.ts';
import { buildStubProvider, libraryThisMachineLacks, type StubProvider } from './support/stub-cuda-provider.ts';

// The CUDA provider checks against real ELF libraries (built here with cc, named and linked like
// onnxruntime 1.29.0's CUDA 13 provider), the real dynamic loader, and the real onnxruntime-node,
// which gets a copy of itself with the stand-in provider beside its libonnxruntime.so.1.

let root: string;
let stub: StubProvider;
/** The first library the provider needs that this machine does not have (every machine without a GPU lacks the driver's libcuda). */
let absent: string;
const withCuda = (dir: string): NodeJS.ProcessEnv => ({ ...process.env, LD_LIBRARY_PATH: dir });

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'pixelflow-cuda-provider-'));
  stub = buildStubProvider(join(root, 'stub'));
  absent = libraryThisMachineLacks();
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('inspectCudaProvider', () => {
  it('finds a complete provider ready when every library resolves, and reads the CUDA it links', () => {
    const report = inspectCudaProvider(stub.providerDir, withCuda(stub.cudaDir));
    expect(report).toEqual({
      dir: stub.providerDir,
      onnxruntimeVersion: onnxruntimeNodeVersion(),
      missingFiles: [],
      cudaMajor: 13,
      notFound: [],
    });
    expect(cudaProviderProblems(report, { cudaMajor: 13 })).toEqual([]);
  });

  it('names each library the loader cannot find, with where it comes from', () => {
    const cudaDir = join(root, 'cuda-without-one');
    cpSync(stub.cudaDir, cudaDir, { recursive: true });
    unlinkSync(join(cudaDir, absent));
    const report = inspectCudaProvider(stub.providerDir, withCuda(cudaDir));
    expect(report.notFound).toEqual([absent]);
    const [problem, ...rest] = cudaProviderProblems(report, { cudaMajor: 13 });
    expect(rest).toEqual([]);
    expect(problem).toMatch(new RegExp(`^libonnxruntime_providers_cuda.so needs ${absent.replace(/\./g, '\\.')}, which the dynamic loader cannot find: install `));
    expect(problem).toContain('or add their folder to LD_LIBRARY_PATH');
  });

  it('finds the run-time loaded cuDNN missing although ldd cannot see it', () => {
    const cudaDir = join(root, 'cuda-without-cudnn');
    cpSync(stub.cudaDir, cudaDir, { recursive: true });
    unlinkSync(join(cudaDir, 'libcudnn.so.9'));
    const report = inspectCudaProvider(stub.providerDir, withCuda(cudaDir));
    if (findLibrary('libcudnn.so.9', withCuda(cudaDir)) === null) {
      expect(report.notFound).toEqual(['libcudnn.so.9']);
      expect(cudaProviderProblems(report)[0]).toContain('install cuDNN 9 for CUDA 13');
    } else {
      expect(report.notFound).toEqual([]); // this machine has cuDNN 9 installed system-wide
    }
  });

  it('leaves the driver library to the host when told it comes from there (a container image)', () => {
    const cudaDir = join(root, 'cuda-without-driver');
    cpSync(stub.cudaDir, cudaDir, { recursive: true });
    unlinkSync(join(cudaDir, 'libcuda.so.1'));
    const report = inspectCudaProvider(stub.providerDir, withCuda(cudaDir));
    expect(cudaProviderProblems(report, { cudaMajor: 13, driverFromHost: true })).toEqual([]);
    if (findLibrary('libcuda.so.1', withCuda(cudaDir)) === null) {
      expect(cudaProviderProblems(report, { cudaMajor: 13 })[0]).toMatch(
        /needs libcuda\.so\.1, which the dynamic loader cannot find: install the NVIDIA driver \(580 or newer for CUDA 13\)/,
      );
    }
  });

  it("refuses a provider whose CUDA major is not the machine's", () => {
    const report = inspectCudaProvider(stub.providerDir, withCuda(stub.cudaDir));
    expect(cudaProviderProblems(report, { cudaMajor: 12 })).toEqual([
      'libonnxruntime_providers_cuda.so links CUDA 13 but this machine has CUDA 12: use a provider built for CUDA 12, or a CUDA 13 base',
    ]);
  });

  it('reads the CUDA major of a CUDA 12 build as 12', () => {
    const old = buildStubProvider(join(root, 'cuda12'), {
      needed: ['libcublasLt.so.12', 'libcublas.so.12', 'libcurand.so.10', 'libcudart.so.12', 'libcuda.so.1'],
    });
    const report = inspectCudaProvider(old.providerDir, withCuda(old.cudaDir));
    expect(report.cudaMajor).toBe(12);
    expect(cudaProviderProblems(report, { cudaMajor: 13 })[0]).toContain('links CUDA 12 but this machine has CUDA 13');
  });

  it('says the provider is not installed, and how to install it, when its files are absent', () => {
    const empty = join(root, 'no-provider');
    mkdirSync(empty);
    const expected =
      "onnxruntime's CUDA execution provider is not installed: libonnxruntime_providers_shared.so and " +
      `libonnxruntime_providers_cuda.so missing from ${empty} (run \`pnpm pixelflow cuda install\`, see deploy/README.md)`;
    expect(cudaProviderNotInstalled(empty)).toBe(expected);
    expect(cudaProviderProblems(inspectCudaProvider(empty))).toEqual([expected]);
    expect(cudaProviderNotInstalled(stub.providerDir)).toBeNull();
  });
});

describe('onnxruntimeVersionOf', () => {
  it("reads the version onnxruntime compiled into its own library: onnxruntime-node's", async () => {
    expect(await onnxruntimeVersionOf(join(onnxruntimeLibDir(), 'libonnxruntime.so.1'))).toBe(onnxruntimeNodeVersion());
  });

  it('reads a provider built for another version as that version', async () => {
    const other = buildStubProvider(join(root, 'other-version'), { onnxruntimeVersion: '1.30.0' });
    expect(await onnxruntimeVersionOf(join(other.providerDir, 'libonnxruntime_providers_cuda.so'))).toBe('1.30.0');
  });

  it('answers null for a library with no version string', async () => {
    expect(await onnxruntimeVersionOf(join(stub.cudaDir, 'libcudart.so.13'))).toBeNull();
  });
});

describe('the real onnxruntime with a provider that cannot load', () => {
  let ortDir: string;

  beforeAll(() => {
    // A private copy of onnxruntime-node: onnxruntime looks for providers beside the
    // libonnxruntime.so.1 it was loaded from, and the shared install must stay untouched.
    const require = createRequire(import.meta.url);
    const packageDir = dirname(require.resolve('onnxruntime-node/package.json'));
    const modules = join(root, 'ort-copy', 'node_modules');
    cpSync(realpathSync(packageDir), join(modules, 'onnxruntime-node'), { recursive: true, dereference: true });
    // pnpm puts a package's dependencies beside it in its own node_modules folder.
    symlinkSync(realpathSync(join(realpathSync(packageDir), '..', 'onnxruntime-common')), join(modules, 'onnxruntime-common'));
    ortDir = join(modules, 'onnxruntime-node', 'bin', 'napi-v6', process.platform, process.arch);
    for (const file of ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so']) {
      copyFileSync(join(stub.providerDir, file), join(ortDir, file));
    }
  });

  it('throws a message that names nothing, and the diagnosis names what is missing', () => {
    const script = join(root, 'ort-copy', 'create-cuda-session.mjs');
    writeFileSync(
      script,
      `import ort from 'onnxruntime-node';
try {
  await ort.InferenceSession.create(process.argv[2], { executionProviders: [{ name: 'cuda', deviceId: 0 }] });
  console.log('created');
} catch (error) {
  console.log(JSON.stringify(error.message));
}
`,
    );
    const model = join(import.meta.dirname, '..', '..', '..', 'test', 'fixtures', 'tiny', 'model.onnx');
    const child = spawnSync(process.execPath, [script, model], { encoding: 'utf8', env: withCuda(join(root, 'nowhere')) });
    expect(JSON.parse(child.stdout.trim())).toMatch(/Failed to load shared library/);
    // onnxruntime's own log (stderr) names the first library dlopen could not find.
    expect(child.stderr).toMatch(/lib\S+\.so\.\d+: cannot open shared object file/);

    const diagnosis = explainCudaProviderFailure(ortDir, withCuda(join(root, 'nowhere')));
    expect(diagnosis).toContain(`libonnxruntime_providers_cuda.so needs `);
    expect(diagnosis).toContain(absent);
    expect(diagnosis).not.toContain('\n');
  });

  it('is explained as not installed once the provider files are gone', () => {
    rmSync(join(ortDir, 'libonnxruntime_providers_cuda.so'));
    expect(explainCudaProviderFailure(ortDir)).toContain("onnxruntime's CUDA execution provider is not installed");
  });
});

it('ldd is on this machine (the checks and the worker image rely on it)', () => {
  expect(execFileSync('ldd', ['--version'], { encoding: 'utf8' })).toMatch(/ldd/);
});
