import { delimiter } from 'node:path';
import { probePython, pythonCandidates, REQUIRED_MODULES, type PythonCandidate, type UsablePython } from '@pixelflow/cli/python';

// Which Python runs the PyTorch reference in a benchmark. The authors' pipeline runs on PyTorch 2.x,
// whose CPU kernels (and fused attention) differ from Debian's 1.13, so a comparison against 1.13
// alone flatters us. Every candidate is probed and the newest PyTorch wins; the table names it.

/** PIXELFLOW_BENCH_PYTHON: a PATH-style list of interpreters to consider first (a venv with torch 2.x). */
function benchCandidates(env: NodeJS.ProcessEnv): PythonCandidate[] {
  const extra = (env['PIXELFLOW_BENCH_PYTHON'] ?? '').split(delimiter).filter((c) => c !== '');
  return [...extra.map((command) => ({ command, label: `PIXELFLOW_BENCH_PYTHON=${command}`, explicit: true })), ...pythonCandidates(env)];
}

function torchMajorMinor(version: string): [number, number] {
  const match = /^(\d+)\.(\d+)/.exec(version);
  return match ? [Number(match[1]), Number(match[2])] : [0, 0];
}

export interface ReferencePython {
  python: UsablePython;
  /** True when the chosen PyTorch is 2.x or later, like the authors' pipeline. */
  modern: boolean;
  /** One line for the benchmark's output: which PyTorch, and what to do when only 1.x exists. */
  note: string;
}

/** The usable candidate with the newest PyTorch, or null when none imports torch. */
export async function findReferencePython(env: NodeJS.ProcessEnv = process.env): Promise<ReferencePython | null> {
  const probes = await Promise.all(benchCandidates(env).map((candidate) => probePython(candidate, REQUIRED_MODULES)));
  const usable = probes.filter((p): p is UsablePython => p.ok);
  const newest = usable.sort((a, b) => {
    const [am, an] = torchMajorMinor(a.torchVersion);
    const [bm, bn] = torchMajorMinor(b.torchVersion);
    return bm - am || bn - an;
  })[0];
  if (newest === undefined) return null;
  const modern = torchMajorMinor(newest.torchVersion)[0] >= 2;
  const note = modern
    ? `reference: PyTorch ${newest.torchVersion} (${newest.executable})`
    : `reference: PyTorch ${newest.torchVersion} (${newest.executable}); no PyTorch 2.x found on this machine ` +
      '(set PIXELFLOW_BENCH_PYTHON to a python with torch>=2 to compare against the version the authors run)';
  return { python: newest, modern, note };
}
