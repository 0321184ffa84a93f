import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  CUDA_PROVIDER_FILES,
  CUDA_PROVIDER_LIBRARY,
  cudaProviderProblems,
  DRIVER_LIBRARY,
  inspectCudaProvider,
  onnxruntimeLibDir,
  onnxruntimeNodeVersion,
  onnxruntimeVersionOf,
  type CudaProviderReport,
} from '@pixelflow/onnx';
import { CliError, UsageError } from '../errors.ts';
import { parseFlags } from '../flags.ts';
import { CUDA_SUMMARY } from './summaries.ts';

const COMMAND = 'cuda';

// `pixelflow cuda install|check`: onnxruntime's CUDA execution provider on a machine that reaches
// only the npm registry. onnxruntime-node's own install script fetches the provider from NuGet
// (the production image does that); here the same official build comes from an npm package that
// carries it, and nothing of it runs during a plain `pnpm install`.

/**
 * The npm package carrying onnxruntime 1.29.0's official Linux x64 CUDA provider (built for CUDA 13,
 * cuDNN 9), with the integrity the registry publishes for it: a cached or given copy must match.
 */
export const PROVIDER_PACKAGE = {
  spec: 'com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9',
  file: 'com.github.asus4.onnxruntime.linux-x64-gpu-0.4.9.tgz',
  integrity: 'sha512-FopIhNE/Ng+v2X65wVc9clPCBCvhvA53Hxo2U0Kf5fGdVsC7iCA+mZ0KLWggcQAj7TIZ6pNidR4AC10g74Xo6w==',
  onnxruntime: '1.29.0',
} as const;

export const CUDA_USAGE = `Usage: pixelflow cuda install [options]
       pixelflow cuda check [options]

${CUDA_SUMMARY}.
install  puts libonnxruntime_providers_cuda.so and libonnxruntime_providers_shared.so
         beside onnxruntime-node's libonnxruntime.so.1, after checking that they were
         built for the same onnxruntime version; then checks them as below.
         By default they come from the npm package
         ${PROVIDER_PACKAGE.spec}: onnxruntime ${PROVIDER_PACKAGE.onnxruntime}'s
         official CUDA 13 build (179 MB), fetched once with npm pack and cached in
         ~/.cache/pixelflow.
check    says whether the provider is installed, which CUDA it links, and which of the
         libraries it needs (CUDA runtime, cuBLAS, cuRAND, cuDNN, the driver's
         libcuda) the dynamic loader cannot find. Exits 1 naming them.

Options:
  --from PATH         install: a .tgz holding the provider (an npm package, the official
                      onnxruntime-linux-x64-gpu release) or a folder holding both files
  --ort-dir DIR       the folder of libonnxruntime.so.1 (default: onnxruntime-node's,
                      the one the worker loads)
  --cuda-major N      also fail unless the provider links CUDA N (the image's)
  --driver-from-host  do not require the driver's libcuda.so.1 now: in a container the
                      NVIDIA Container Toolkit mounts it from the host at run time
  -h, --help          show this help

A plain \`pnpm install\` never runs this. The CUDA libraries themselves are not
installed by it: use the NVIDIA driver and CUDA/cuDNN packages of the machine, or point
LD_LIBRARY_PATH at folders that hold them.
`;

export interface CudaOptions {
  action: 'install' | 'check';
  from?: string;
  ortDir: string;
  cudaMajor?: number;
  driverFromHost: boolean;
}

export function parseCudaArgs(args: readonly string[]): CudaOptions | 'help' {
  const parsed = parseFlags(COMMAND, args, {
    from: { type: 'string' },
    'ort-dir': { type: 'string' },
    'cuda-major': { type: 'string' },
    'driver-from-host': { type: 'boolean', default: false },
  });
  if (parsed === 'help') return 'help';
  const { values, positionals } = parsed;
  const [action, ...extra] = positionals;
  if (action !== 'install' && action !== 'check') {
    throw new UsageError(
      action === undefined ? 'missing install or check (see pixelflow cuda --help)' : `unknown action '${action}' (install or check)`,
      { command: COMMAND },
    );
  }
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`, { command: COMMAND });
  if (values.from !== undefined && action !== 'install') throw new UsageError('--from goes with install', { command: COMMAND });
  const cudaMajor = values['cuda-major'];
  if (cudaMajor !== undefined && !/^\d{1,3}$/.test(cudaMajor.trim())) {
    throw new UsageError(`--cuda-major must be a CUDA major version such as 13, not '${cudaMajor}'`, { command: COMMAND });
  }
  return {
    action,
    ortDir: resolve(values['ort-dir'] ?? onnxruntimeLibDir()),
    ...(values.from !== undefined && { from: resolve(values.from) }),
    ...(cudaMajor !== undefined && { cudaMajor: Number(cudaMajor) }),
    driverFromHost: values['driver-from-host'],
  };
}

async function sha512Integrity(file: string): Promise<string> {
  const hash = createHash('sha512');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return `sha512-${hash.digest('base64')}`;
}

/** The provider package's tarball: from the cache, or fetched from the npm registry into it. */
async function providerPackage(): Promise<string> {
  const cacheDir = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'pixelflow');
  const cached = join(cacheDir, PROVIDER_PACKAGE.file);
  if (existsSync(cached) && (await sha512Integrity(cached)) === PROVIDER_PACKAGE.integrity) return cached;
  await mkdir(cacheDir, { recursive: true });
  process.stderr.write(`pixelflow cuda: fetching ${PROVIDER_PACKAGE.spec} from the npm registry (179 MB)...\n`);
  const packed = spawnSync('npm', ['pack', PROVIDER_PACKAGE.spec, '--pack-destination', cacheDir, '--silent'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (packed.error || packed.status !== 0) {
    const why = packed.error?.message ?? packed.stderr.split('\n').find((line) => /ERR|error/i.test(line)) ?? `exit ${packed.status}`;
    throw new CliError(`could not fetch ${PROVIDER_PACKAGE.spec} with npm pack (${why.trim()}); or give a copy with --from`, 1, {
      command: COMMAND,
    });
  }
  if ((await sha512Integrity(cached)) !== PROVIDER_PACKAGE.integrity) {
    await rm(cached, { force: true });
    throw new CliError(`${PROVIDER_PACKAGE.file} does not have the integrity the registry published for it; not installed`, 1, {
      command: COMMAND,
    });
  }
  return cached;
}

/** Every path under `dir` named like a provider file (depth-first, a few levels). */
async function findProviderFiles(dir: string, depth = 6): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory() && depth > 0) {
      for (const [name, inner] of await findProviderFiles(path, depth - 1)) if (!found.has(name)) found.set(name, inner);
    } else if ((entry.isFile() || entry.isSymbolicLink()) && (CUDA_PROVIDER_FILES as readonly string[]).includes(entry.name)) {
      if (!found.has(entry.name)) found.set(entry.name, path);
    }
  }
  return found;
}

/** The provider's files from `from` (a folder or a .tgz, unpacked into `scratch`). */
async function providerFiles(from: string, scratch: string): Promise<Map<string, string>> {
  const stats = await stat(from).catch(() => null);
  if (!stats) throw new UsageError(`--from ${from} does not exist`, { command: COMMAND });
  let root = from;
  if (!stats.isDirectory()) {
    const unpacked = spawnSync('tar', ['-xzf', from, '-C', scratch, '--wildcards', ...CUDA_PROVIDER_FILES.map((f) => `*${f}`)], {
      encoding: 'utf8',
    });
    if (unpacked.error || unpacked.status !== 0) {
      const why = unpacked.error?.message ?? unpacked.stderr.trim().split('\n')[0];
      throw new UsageError(`${from} is not a .tgz holding ${CUDA_PROVIDER_FILES.join(' and ')} (${why})`, { command: COMMAND });
    }
    root = scratch;
  }
  const found = await findProviderFiles(root);
  const missing = CUDA_PROVIDER_FILES.filter((file) => !found.has(file));
  if (missing.length > 0) throw new UsageError(`${from} holds no ${missing.join(' and ')}`, { command: COMMAND });
  return found;
}

/** Refuses a provider built for another onnxruntime: it would not load, or crash when it does. */
async function checkBuiltForThisOnnxruntime(cudaLibrary: string, what: string): Promise<void> {
  const wanted = onnxruntimeNodeVersion();
  const built = await onnxruntimeVersionOf(cudaLibrary);
  if (built === null) {
    throw new CliError(`cannot tell which onnxruntime version ${what} was built for; onnxruntime-node here is ${wanted}`, 1, {
      command: COMMAND,
    });
  }
  if (built !== wanted) {
    throw new CliError(
      `${what} is built for onnxruntime ${built}, but onnxruntime-node here is ${wanted}: a provider only loads ` +
        `into its own onnxruntime version (bring the provider of onnxruntime ${wanted})`,
      1,
      { command: COMMAND },
    );
  }
}

async function install(options: CudaOptions): Promise<void> {
  if (!existsSync(join(options.ortDir, 'libonnxruntime.so.1'))) {
    throw new UsageError(`${options.ortDir} has no libonnxruntime.so.1 (see --ort-dir)`, { command: COMMAND });
  }
  const scratch = await mkdtemp(join(tmpdir(), 'pixelflow-cuda-'));
  try {
    const files = await providerFiles(options.from ?? (await providerPackage()), scratch);
    const cudaLibrary = files.get(CUDA_PROVIDER_LIBRARY) as string;
    await checkBuiltForThisOnnxruntime(cudaLibrary, `${CUDA_PROVIDER_LIBRARY} from ${options.from ?? PROVIDER_PACKAGE.spec}`);
    for (const [name, source] of files) {
      // Copied beside, then renamed over: a running worker never sees half a library.
      const partial = join(options.ortDir, `.${name}.partial-${process.pid}`);
      await copyFile(source, partial);
      await rename(partial, join(options.ortDir, name));
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  process.stdout.write(`pixelflow cuda: installed ${CUDA_PROVIDER_FILES.join(' and ')} in ${options.ortDir}\n`);
}

function describeReady(report: CudaProviderReport, driverFromHost: boolean): string {
  const driverLater = driverFromHost && report.notFound.includes(DRIVER_LIBRARY);
  return (
    `onnxruntime ${report.onnxruntimeVersion}'s CUDA provider in ${report.dir} links CUDA ${report.cudaMajor ?? '(unknown)'}; ` +
    `every library it needs resolves${driverLater ? ` (${DRIVER_LIBRARY} will come from the host at run time)` : ''}`
  );
}

export async function cudaCommand(args: readonly string[]): Promise<number> {
  const options = parseCudaArgs(args);
  if (options === 'help') {
    process.stdout.write(CUDA_USAGE);
    return 0;
  }
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new CliError(`the CUDA provider is installed and checked on linux x64 only, not ${process.platform} ${process.arch}`, 2, {
      command: COMMAND,
    });
  }
  if (options.action === 'install') await install(options);
  const report = inspectCudaProvider(options.ortDir);
  if (report.missingFiles.length === 0) {
    await checkBuiltForThisOnnxruntime(join(report.dir, CUDA_PROVIDER_LIBRARY), `${report.dir}/${CUDA_PROVIDER_LIBRARY}`);
  }
  const problems = cudaProviderProblems(report, {
    ...(options.cudaMajor !== undefined && { cudaMajor: options.cudaMajor }),
    driverFromHost: options.driverFromHost,
  });
  if (problems.length > 0) throw new CliError(problems.join('; '), 1, { command: COMMAND });
  process.stdout.write(`pixelflow cuda: ${describeReady(report, options.driverFromHost)}\n`);
  return 0;
}
