import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, symlinkSync, unlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findLibrary, onnxruntimeLibDir } from '@pixelflow/onnx';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildStubProvider, type StubProvider } from '../packages/onnx/test/support/stub-cuda-provider.ts';

// The worker image's build check, exactly as deploy/Dockerfile runs it (no Docker engine here):
// its RUN line is taken from the Dockerfile and run by sh with the image's CUDA_VERSION, against
// good and broken provider folders made of real ELF libraries.

const REPO = fileURLToPath(new URL('..', import.meta.url));
const dockerfile = readFileSync(join(REPO, 'deploy', 'Dockerfile'), 'utf8');

/** The worker stage: from its FROM line to the end of the file. */
const workerStage = dockerfile.slice(dockerfile.search(/^FROM \S+ AS worker$/m));
const baseImage = /^FROM (\S+) AS worker$/m.exec(workerStage)?.[1] ?? '';
/** The image's CUDA_VERSION, as nvidia/cuda images set it: the tag's version. */
const imageCudaVersion = /^nvidia\/cuda:(\d+\.\d+\.\d+)-/.exec(baseImage)?.[1] ?? '';
/** The check's RUN line, continuation lines joined. */
const checkCommand = (/^RUN (test -n "\$CUDA_VERSION"(?:[^\n]*\\\n)*[^\n]*)/m.exec(workerStage)?.[1] ?? '').replace(/\\\n\s*/g, ' ');

let root: string;
let stub: StubProvider;

function ortDir(name: string): string {
  const dir = join(root, name);
  mkdirSync(dir);
  symlinkSync(join(onnxruntimeLibDir(), 'libonnxruntime.so.1'), join(dir, 'libonnxruntime.so.1'));
  return dir;
}

/** Runs the Dockerfile's check with the folder and environment of a test image. */
function runCheck(dir: string, env: { CUDA_VERSION: string; LD_LIBRARY_PATH: string }) {
  const result = spawnSync('sh', ['-c', `${checkCommand} --ort-dir "$ORT_DIR"`], {
    cwd: REPO,
    encoding: 'utf8',
    env: { ...process.env, ...env, ORT_DIR: dir },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'pixelflow-worker-image-'));
  stub = buildStubProvider(join(root, 'stub'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('deploy/Dockerfile worker stage', () => {
  it('is based on a CUDA 13 + cuDNN runtime image, the CUDA that the provider of onnxruntime-node 1.29.0 links', () => {
    expect(baseImage).toMatch(/^nvidia\/cuda:13\.\d+\.\d+-cudnn-runtime-/);
    const pinned = JSON.parse(readFileSync(join(REPO, 'packages', 'onnx', 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    expect(pinned.dependencies['onnxruntime-node']).toBe('1.29.0');
  });

  it('runs the provider check with the image CUDA major and the driver left to the host', () => {
    expect(checkCommand).toContain('cuda check --cuda-major "${CUDA_VERSION%%.*}" --driver-from-host');
  });

  it('passes a good provider folder', () => {
    const good = ortDir('good');
    cpSync(stub.providerDir, good, { recursive: true });
    const result = runCheck(good, { CUDA_VERSION: imageCudaVersion, LD_LIBRARY_PATH: stub.cudaDir });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });

  it('fails the build when a library the provider needs is not found', () => {
    const folder = ortDir('no-cublas');
    cpSync(stub.providerDir, folder, { recursive: true });
    const cudaDir = join(root, 'cuda-no-cublas');
    cpSync(stub.cudaDir, cudaDir, { recursive: true });
    unlinkSync(join(cudaDir, 'libcublasLt.so.13'));
    const machineHasIt = findLibrary('libcublasLt.so.13', { LD_LIBRARY_PATH: cudaDir }) !== null;
    const result = runCheck(folder, { CUDA_VERSION: imageCudaVersion, LD_LIBRARY_PATH: cudaDir });
    if (machineHasIt) {
      expect(result.code).toBe(0);
    } else {
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/^pixelflow cuda: libonnxruntime_providers_cuda\.so needs libcublasLt\.so\.13, which the dynamic loader cannot find/);
    }
  });

  it("fails the build when the provider's CUDA major is not the image's", () => {
    const folder = ortDir('cuda12-image');
    cpSync(stub.providerDir, folder, { recursive: true });
    const result = runCheck(folder, { CUDA_VERSION: '12.6.3', LD_LIBRARY_PATH: stub.cudaDir });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('links CUDA 13 but this machine has CUDA 12');
  });

  it('fails the build when the provider is missing, and when CUDA_VERSION is not set', () => {
    const bare = ortDir('bare');
    const missing = runCheck(bare, { CUDA_VERSION: imageCudaVersion, LD_LIBRARY_PATH: stub.cudaDir });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("onnxruntime's CUDA execution provider is not installed");
    expect(runCheck(bare, { CUDA_VERSION: '', LD_LIBRARY_PATH: stub.cudaDir }).code).not.toBe(0);
  });

  it('is a shell line sh can parse', () => {
    expect(() => execFileSync('sh', ['-n', '-c', checkCommand])).not.toThrow();
  });
});
