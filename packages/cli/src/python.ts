import { execFile, spawn, type ExecFileException } from 'node:child_process';
import { constants } from 'node:os';
import { delimiter } from 'node:path';
import { pythonSourceDir } from './repo.ts';

// Our model code is Python (PyTorch + onnx). The TypeScript side never bundles
// a Python; it finds one on the machine that can import what the Python side
// needs, and explains exactly what to install when none can. Used by
// `pixelflow convert`, the pytest runner, and later by eval/training commands.

/** Modules every Python entry point of ours imports. */
export const REQUIRED_MODULES: readonly string[] = ['torch', 'onnx', 'yaml', 'numpy'];

/** Oldest PyTorch our model code supports (Debian's python3-torch). */
export const MIN_TORCH_VERSION = [1, 13] as const;

/**
 * What to install, as one sentence for error messages. libopenblas0-pthread
 * is listed because without it Debian's torch runs matrix products ~15x slower.
 */
export function installHint(options: { pytest?: boolean } = {}): string {
  const debs = ['python3-torch', 'python3-onnx', 'python3-yaml', 'python3-numpy'];
  const modules = ['torch>=1.13', 'onnx', 'pyyaml', 'numpy'];
  if (options.pytest) {
    debs.push('python3-pytest');
    modules.push('pytest');
  }
  return (
    `On Debian/Ubuntu: apt-get install -y ${debs.join(' ')} libopenblas0-pthread; ` +
    `or set PIXELFLOW_PYTHON to a python that has ${modules.join(', ')}.`
  );
}

/** Importing torch takes seconds on a cold disk; a minute means something is wrong. */
const PROBE_TIMEOUT_MS = 60_000;

export interface PythonCandidate {
  /** What to execute: a path, or a name looked up on PATH. */
  command: string;
  /** How to name it in messages. */
  label: string;
  /** Chosen by the user ($PIXELFLOW_PYTHON) rather than a fallback we guessed. */
  explicit?: boolean;
}

export type PythonProbe =
  | { candidate: PythonCandidate; ok: true; executable: string; torchVersion: string }
  | { candidate: PythonCandidate; ok: false; problem: string };

export type UsablePython = Extract<PythonProbe, { ok: true }>;

/**
 * Where to look, in order: $PIXELFLOW_PYTHON, then `python3` on PATH, then
 * Debian's /usr/bin/python3 (on machines where PATH's python3 is a pyenv or
 * venv without torch, the system one usually has python3-torch).
 * $PIXELFLOW_PYTHON_CANDIDATES (a PATH-style list) replaces the fallback list,
 * for unusual installs and for tests that must not find the system Python.
 */
export function pythonCandidates(env: NodeJS.ProcessEnv = process.env): PythonCandidate[] {
  const candidates: PythonCandidate[] = [];
  const explicit = env['PIXELFLOW_PYTHON'];
  if (explicit) candidates.push({ command: explicit, label: `PIXELFLOW_PYTHON=${explicit}`, explicit: true });
  const fallbacks = env['PIXELFLOW_PYTHON_CANDIDATES']?.split(delimiter).filter((c) => c !== '') ?? [
    'python3',
    '/usr/bin/python3',
  ];
  for (const command of fallbacks) candidates.push({ command, label: command });
  return candidates;
}

// Imports each module named on the command line and reports, as one JSON line,
// which ones failed. Written for any Python 3 so that an old interpreter is
// reported as "missing torch" rather than as a syntax error.
const PROBE_SCRIPT = `
import importlib, json, sys
missing = []
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception:
        missing.append(name)
torch = sys.modules.get("torch")
print(json.dumps({"executable": sys.executable, "missing": missing,
                  "torch": getattr(torch, "__version__", None)}))
`;

function torchTooOld(version: string): boolean {
  const match = /^(\d+)\.(\d+)/.exec(version);
  if (!match) return false; // a dev build with an odd version string: let the converter decide
  const [major, minor] = [Number(match[1]), Number(match[2])];
  return major < MIN_TORCH_VERSION[0] || (major === MIN_TORCH_VERSION[0] && minor < MIN_TORCH_VERSION[1]);
}

function describeSpawnFailure(error: ExecFileException): string {
  if (error.code === 'ENOENT') return 'not found';
  if (error.code === 'EACCES') return 'not executable';
  if (error.killed) return `no answer within ${PROBE_TIMEOUT_MS / 1000} s`;
  if (error.signal) return `killed by ${error.signal}`;
  if (typeof error.code === 'number') return `exited with status ${error.code}`;
  return error.message.split('\n')[0] ?? 'failed to run';
}

/** Runs one candidate and checks that it imports `modules` (torch at the supported version). */
export function probePython(
  candidate: PythonCandidate,
  modules: readonly string[] = REQUIRED_MODULES,
): Promise<PythonProbe> {
  return new Promise((resolve) => {
    execFile(
      candidate.command,
      ['-c', PROBE_SCRIPT, ...modules],
      { timeout: PROBE_TIMEOUT_MS, windowsHide: true },
      (error, stdout) => {
        if (error) {
          resolve({ candidate, ok: false, problem: describeSpawnFailure(error) });
          return;
        }
        let answer: { executable?: unknown; missing?: unknown; torch?: unknown };
        try {
          // The last line: some site hooks print banners before our JSON.
          answer = JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as typeof answer;
        } catch {
          resolve({ candidate, ok: false, problem: 'did not answer like a Python 3 interpreter' });
          return;
        }
        const missing = Array.isArray(answer.missing) ? answer.missing.map(String) : [];
        if (missing.length > 0) {
          resolve({ candidate, ok: false, problem: `cannot import ${missing.join(', ')}` });
          return;
        }
        const torchVersion = typeof answer.torch === 'string' ? answer.torch : '';
        if (modules.includes('torch') && torchTooOld(torchVersion)) {
          resolve({ candidate, ok: false, problem: `torch ${torchVersion} is older than ${MIN_TORCH_VERSION.join('.')}` });
          return;
        }
        const executable = typeof answer.executable === 'string' && answer.executable ? answer.executable : candidate.command;
        resolve({ candidate, ok: true, executable, torchVersion });
      },
    );
  });
}

export interface FindPythonOptions {
  candidates?: readonly PythonCandidate[];
  /** Modules the interpreter must import; REQUIRED_MODULES by default. */
  modules?: readonly string[];
}

/** Tries the candidates in order; `python` is the first usable one, `tried` every probe made. */
export async function findPython(
  options: FindPythonOptions = {},
): Promise<{ python: UsablePython | null; tried: PythonProbe[] }> {
  const { candidates = pythonCandidates(), modules = REQUIRED_MODULES } = options;
  const tried: PythonProbe[] = [];
  for (const candidate of candidates) {
    const probe = await probePython(candidate, modules);
    tried.push(probe);
    if (probe.ok) return { python: probe, tried };
  }
  return { python: null, tried };
}

/** `PIXELFLOW_PYTHON=/x (not found), python3 (cannot import torch)` for messages. */
export function describeTried(tried: readonly PythonProbe[]): string {
  if (tried.length === 0) return 'no candidates';
  return tried.map((p) => `${p.candidate.label} (${p.ok ? `usable, torch ${p.torchVersion}` : p.problem})`).join(', ');
}

/** The environment our Python entry points run in: the repository's pytorch/ first on PYTHONPATH. */
export function pythonEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const inherited = env['PYTHONPATH'];
  return {
    ...env,
    PYTHONPATH: inherited ? `${pythonSourceDir}${delimiter}${inherited}` : pythonSourceDir,
    // Progress lines should appear as they happen, also when stdout is a pipe (CI logs).
    PYTHONUNBUFFERED: '1',
  };
}

/**
 * Runs Python with inherited stdio and resolves with its exit status
 * (128 + signal number when a signal ended it, as shells report it).
 */
export function runPython(
  python: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, args, { stdio: 'inherit', cwd: options.cwd, env: options.env ?? pythonEnv() });
    // Ctrl-C reaches the child directly (same process group); we only have to
    // outlive it so its exit status becomes ours. SIGTERM and SIGHUP are
    // usually sent to us alone (a supervisor, a closed terminal): pass them on.
    const ignore = (): void => {};
    const forward = (signal: NodeJS.Signals): void => {
      child.kill(signal);
    };
    process.on('SIGINT', ignore);
    process.on('SIGTERM', forward);
    process.on('SIGHUP', forward);
    const cleanup = (): void => {
      process.off('SIGINT', ignore);
      process.off('SIGTERM', forward);
      process.off('SIGHUP', forward);
    };
    child.on('error', (error) => {
      cleanup();
      reject(error);
    });
    child.on('close', (code, signal) => {
      cleanup();
      resolve(code ?? 128 + (signal ? constants.signals[signal] : 0));
    });
  });
}
