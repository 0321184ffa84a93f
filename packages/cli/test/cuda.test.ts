import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, symlinkSync, unlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findLibrary, onnxruntimeLibDir, onnxruntimeNodeVersion } from '@pixelflow/onnx';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildStubProvider, libraryThisMachineLacks, type StubProvider } from '../../onnx/test/support/stub-cuda-provider.ts';
import { pixelflow, type Result } from './support/run-cli.ts';

// `pixelflow cuda install|check` as an operator (and the worker image's build) runs it: a real
// process, real ELF libraries named and linked like onnxruntime 1.29.0's CUDA 13 provider, the real
// dynamic loader, and onnxruntime-node's real libonnxruntime.so.1 in a folder of the test's own.

let root: string;
let stub: StubProvider;
let absent: string;
const version = onnxruntimeNodeVersion();

function env(libraryPath: string): NodeJS.ProcessEnv {
  return { ...process.env, LD_LIBRARY_PATH: libraryPath };
}

/** A folder like onnxruntime-node's bin folder: libonnxruntime.so.1 and nothing else yet. */
function ortDir(name: string): string {
  const dir = join(root, name);
  mkdirSync(dir);
  symlinkSync(join(onnxruntimeLibDir(), 'libonnxruntime.so.1'), join(dir, 'libonnxruntime.so.1'));
  return dir;
}

function expectFailure(result: Result, code: number, line: string | RegExp): void {
  expect(result.code).toBe(code);
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  if (typeof line === 'string') expect(lines[0]).toBe(line);
  else expect(lines[0]).toMatch(line);
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'pixelflow-cuda-cli-'));
  stub = buildStubProvider(join(root, 'stub'), { onnxruntimeVersion: version });
  absent = libraryThisMachineLacks();
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('pixelflow cuda install', () => {
  it('puts both provider files beside libonnxruntime.so.1 and reports it ready when every library resolves', async () => {
    const dir = ortDir('from-folder');
    const result = await pixelflow(['cuda', 'install', '--from', stub.providerDir, '--ort-dir', dir], env(stub.cudaDir));
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      `pixelflow cuda: installed libonnxruntime_providers_shared.so and libonnxruntime_providers_cuda.so in ${dir}\n` +
        `pixelflow cuda: onnxruntime ${version}'s CUDA provider in ${dir} links CUDA 13; every library it needs resolves\n`,
    );
    for (const file of ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so']) {
      expect(readFileSync(join(dir, file)).equals(readFileSync(join(stub.providerDir, file)))).toBe(true);
    }
  });

  it('takes the provider out of a .tgz laid out like the npm package that carries it', async () => {
    const packageRoot = join(root, 'npm-package');
    cpSync(stub.providerDir, join(packageRoot, 'package', 'Plugins', 'Linux', 'x64'), { recursive: true });
    const tarball = join(root, 'provider.tgz');
    execFileSync('tar', ['-czf', tarball, '-C', packageRoot, 'package']);
    const dir = ortDir('from-tgz');
    const result = await pixelflow(['cuda', 'install', '--from', tarball, '--ort-dir', dir], env(stub.cudaDir));
    expect(result.code).toBe(0);
    expect(existsSync(join(dir, 'libonnxruntime_providers_cuda.so'))).toBe(true);
    expect(existsSync(join(dir, 'libonnxruntime_providers_shared.so'))).toBe(true);
  });

  it('refuses a provider built for another onnxruntime version and copies nothing', async () => {
    const other = buildStubProvider(join(root, 'other-version'), { onnxruntimeVersion: '1.30.0' });
    const dir = ortDir('mismatch');
    const result = await pixelflow(['cuda', 'install', '--from', other.providerDir, '--ort-dir', dir], env(other.cudaDir));
    expectFailure(
      result,
      1,
      `pixelflow cuda: libonnxruntime_providers_cuda.so from ${other.providerDir} is built for onnxruntime 1.30.0, but onnxruntime-node ` +
        `here is ${version}: a provider only loads into its own onnxruntime version (bring the provider of onnxruntime ${version})`,
    );
    expect(existsSync(join(dir, 'libonnxruntime_providers_cuda.so'))).toBe(false);
    expect(existsSync(join(dir, 'libonnxruntime_providers_shared.so'))).toBe(false);
  });

  it('installs, then says which libraries are still missing and exits 1', async () => {
    const dir = ortDir('libraries-missing');
    const result = await pixelflow(['cuda', 'install', '--from', stub.providerDir, '--ort-dir', dir], env(join(root, 'nowhere')));
    expect(result.stdout).toContain('pixelflow cuda: installed');
    expectFailure(result, 1, new RegExp(`^pixelflow cuda: libonnxruntime_providers_cuda\\.so needs .*${absent.replace(/\./g, '\\.')}.*, which the dynamic loader cannot find: install `));
  });

  it.each([
    [['cuda'], 'pixelflow cuda: missing install or check (see pixelflow cuda --help)'],
    [['cuda', 'remove'], "pixelflow cuda: unknown action 'remove' (install or check)"],
    [['cuda', 'check', '--from', 'x.tgz'], 'pixelflow cuda: --from goes with install'],
    [['cuda', 'check', '--cuda-major', 'thirteen'], "pixelflow cuda: --cuda-major must be a CUDA major version such as 13, not 'thirteen'"],
    [['cuda', 'install', 'extra'], "pixelflow cuda: unexpected argument 'extra'"],
  ])('rejects bad input in one line: %j', async (args, line) => {
    expectFailure(await pixelflow(args), 2, line);
  });

  it('names a --from that does not exist, and an --ort-dir without libonnxruntime.so.1', async () => {
    const dir = ortDir('usage');
    expectFailure(
      await pixelflow(['cuda', 'install', '--from', join(root, 'missing.tgz'), '--ort-dir', dir]),
      2,
      `pixelflow cuda: --from ${join(root, 'missing.tgz')} does not exist`,
    );
    expectFailure(
      await pixelflow(['cuda', 'install', '--from', stub.providerDir, '--ort-dir', root]),
      2,
      `pixelflow cuda: ${root} has no libonnxruntime.so.1 (see --ort-dir)`,
    );
    expectFailure(
      await pixelflow(['cuda', 'install', '--from', stub.cudaDir, '--ort-dir', dir]),
      2,
      `pixelflow cuda: ${stub.cudaDir} holds no libonnxruntime_providers_shared.so and libonnxruntime_providers_cuda.so`,
    );
  });
});

describe('pixelflow cuda check (the worker image runs it at build time)', () => {
  let good: string;

  beforeAll(() => {
    good = ortDir('checked');
    cpSync(stub.providerDir, good, { recursive: true });
  });

  it('passes a good folder when its CUDA major is the one expected', async () => {
    const result = await pixelflow(['cuda', 'check', '--ort-dir', good, '--cuda-major', '13'], env(stub.cudaDir));
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('links CUDA 13; every library it needs resolves');
  });

  it("fails when the provider's CUDA major is not the image's", async () => {
    expectFailure(
      await pixelflow(['cuda', 'check', '--ort-dir', good, '--cuda-major', '12'], env(stub.cudaDir)),
      1,
      'pixelflow cuda: libonnxruntime_providers_cuda.so links CUDA 13 but this machine has CUDA 12: use a provider built for CUDA 12, or a CUDA 13 base',
    );
  });

  it('fails on any library the loader cannot find, naming it', async () => {
    const cudaDir = join(root, 'cuda-without-one');
    cpSync(stub.cudaDir, cudaDir, { recursive: true });
    unlinkSync(join(cudaDir, absent));
    expectFailure(
      await pixelflow(['cuda', 'check', '--ort-dir', good, '--cuda-major', '13'], env(cudaDir)),
      1,
      new RegExp(`^pixelflow cuda: libonnxruntime_providers_cuda\\.so needs ${absent.replace(/\./g, '\\.')}, which the dynamic loader cannot find: `),
    );
  });

  it('leaves libcuda.so.1 to the host with --driver-from-host, as the worker image builds without a driver', async () => {
    const noDriver = join(root, 'cuda-without-driver');
    cpSync(stub.cudaDir, noDriver, { recursive: true });
    unlinkSync(join(noDriver, 'libcuda.so.1'));
    const passed = await pixelflow(['cuda', 'check', '--ort-dir', good, '--cuda-major', '13', '--driver-from-host'], env(noDriver));
    expect(passed.code).toBe(0);
    if (findLibrary('libcuda.so.1', env(noDriver)) === null) {
      expect(passed.stdout).toContain('every library it needs resolves (libcuda.so.1 will come from the host at run time)');
      const failed = await pixelflow(['cuda', 'check', '--ort-dir', good, '--cuda-major', '13'], env(noDriver));
      expectFailure(failed, 1, /needs libcuda\.so\.1, which the dynamic loader cannot find: install the NVIDIA driver/);
    }
  });

  it('fails when the provider is not installed, saying how to install it', async () => {
    const bare = ortDir('bare');
    expectFailure(
      await pixelflow(['cuda', 'check', '--ort-dir', bare]),
      1,
      `pixelflow cuda: onnxruntime's CUDA execution provider is not installed: libonnxruntime_providers_shared.so and ` +
        `libonnxruntime_providers_cuda.so missing from ${bare} (run \`pnpm pixelflow cuda install\`, see deploy/README.md)`,
    );
  });
});
