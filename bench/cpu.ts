// bench/cpu: the whole `pixelflow generate` process on the CPU against the arithmetic floor and the
// PyTorch reference pipeline, in one run. `pnpm bench:cpu [--model DIR --checkpoint DIR] [--repeats N]`.
//
// The job: 4 images, Euler 10 steps per stage, CFG 4, on a random 34M-parameter model at 64 px
// (8 heads x 64, depth 7, patch 4, 4 stages; made once into ~/.cache/pixelflow/bench/ by our own tools), or on
// --model. It prints:
// - the process, as a user runs it: wall time split into start-up, model load, sampling (of which
//   model calls inside onnxruntime) and PNG writing, from the command's own --json summary;
// - the model calls against this CPU's matrix-product peak, measured here through onnxruntime on a
//   one-MatMul graph, with the job's FLOPs counted from the architecture;
// - the reference sampler (the newest PyTorch found: bench/reference-python.ts) with the model
//   already loaded, as the authors' pipeline call is timed, and our whole process against it;
// - where a call at the largest stage spends its time, per operator (onnxruntime's profiler).
// Targets (issue 12): whole process <= 8.2 s and >= 1.35x the reference pipeline on PyTorch 2.x;
// start-up + load + writing < 0.5 s; model calls >= 86% of peak.

import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, cpus, homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { pythonEnv } from '@pixelflow/cli/python';
import { loadModelDir, type ModelDir } from '@pixelflow/formats';
import { profileOperators } from '@pixelflow/onnx';
import { median } from './numbers.ts';
import { findReferencePython, type ReferencePython } from './reference-python.ts';

const REPO = fileURLToPath(new URL('../', import.meta.url));
// Beside bench:throughput's medium model, outside the checkout.
const CACHE = join(homedir(), '.cache/pixelflow/bench/random-34m');
const IMAGES = 4;
const STEPS = 10;
const CFG = 4;
const SEED = 1;

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    checkpoint: { type: 'string' },
    repeats: { type: 'string', default: '3' },
  },
});
const repeats = Number(values.repeats);

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(command, args, { env, cwd: REPO, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) =>
      error ? reject(new Error(`${command} ${args.join(' ')}: ${stderr || error.message}`)) : resolve(stdout),
    ),
  );
}

/** How a user runs the CLI without pnpm: its launcher, which runs the compiled bundle. */
const CLI = { command: process.execPath, args: [join(REPO, 'packages/cli/bin/pixelflow.mjs')], label: 'node packages/cli/bin/pixelflow.mjs' };

async function ensureModel(reference: ReferencePython): Promise<{ model: string; checkpoint: string }> {
  if (values.model) {
    if (!values.checkpoint) throw new Error('--model needs --checkpoint (the official-format folder it was converted from)');
    return { model: values.model, checkpoint: values.checkpoint };
  }
  const checkpoint = join(CACHE, 'checkpoint');
  const model = join(CACHE, 'model');
  if (existsSync(join(model, 'pixelflow.json'))) return { model, checkpoint };
  await mkdir(CACHE, { recursive: true });
  process.stderr.write('bench:cpu: making the 34M-parameter benchmark model (once) ...\n');
  await run(reference.python.executable, ['-m', 'pixelflow.random_checkpoint', checkpoint, '--heads', '8', '--head-dim', '64', '--depth', '7', '--patch', '4', '--resolution', '64', '--stages', '4'], pythonEnv());
  await run(CLI.command, [...CLI.args, 'convert', checkpoint, model, '--force', '--name', 'random-34m']);
  return { model, checkpoint };
}

/** Rows per model call at each stage: CFG doubles the batch where the stage's guidance scale is not 1. */
function rowsPerStage(dir: ModelDir): number[] {
  return dir.manifest.scheduler.cfg_stage_weights.map((w) => (1 + (CFG - 1) * w === 1 ? IMAGES : 2 * IMAGES));
}

/**
 * Floating-point operations of the job's model calls, counted from the architecture: per token and
 * block the q, k, v, o and MLP products (24 D^2) and attention's two products (4 N D); per row the
 * adaLN, embedder and output-modulation products; per token the patch embedding and projection out.
 */
function jobFlops(dir: ModelDir): number {
  const a = dir.manifest.architecture;
  const d = a.num_attention_heads * a.attention_head_dim;
  const rows = rowsPerStage(dir);
  let flops = 0;
  dir.manifest.stages.forEach((stage, k) => {
    const tokens = (stage.resolution / a.patch_size) ** 2;
    const perRow =
      a.depth * tokens * (24 * d * d + 4 * tokens * d) +
      a.depth * 2 * d * 6 * d + 2 * (2 * 256 * d + 2 * d * d) + 2 * d * 2 * d +
      tokens * 2 * (a.in_channels + a.out_channels) * a.patch_size ** 2 * d;
    flops += STEPS * (rows[k] as number) * perRow;
  });
  return flops;
}

/** This CPU's fp32 matrix-product rate through onnxruntime (MLAS), on every CPU, at the model's shapes. */
async function matmulPeak(dir: ModelDir, pythonExe: string): Promise<number> {
  const file = join(CACHE, 'matmul.onnx');
  if (!existsSync(file)) {
    await mkdir(CACHE, { recursive: true });
    const script = [
      'import onnx, sys',
      'from onnx import helper, TensorProto as T',
      "a = helper.make_tensor_value_info('a', T.FLOAT, ['m', 'k'])",
      "b = helper.make_tensor_value_info('b', T.FLOAT, ['k', 'n'])",
      "y = helper.make_tensor_value_info('y', T.FLOAT, ['m', 'n'])",
      "g = helper.make_graph([helper.make_node('MatMul', ['a', 'b'], ['y'])], 'matmul', [a, b], [y])",
      "onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)]), sys.argv[1])",
    ].join('\n');
    await run(pythonExe, ['-c', script, file]);
  }
  const session = await ort.InferenceSession.create(file, { intraOpNumThreads: availableParallelism() });
  const a = dir.manifest.architecture;
  const d = a.num_attention_heads * a.attention_head_dim;
  const m = 2 * IMAGES * (dir.manifest.resolution / a.patch_size) ** 2;
  let best = 0;
  try {
    for (const [k, n] of [[d, d], [d, 4 * d], [4 * d, d]] as const) {
      const feeds = {
        a: new ort.Tensor('float32', Float32Array.from({ length: m * k }, () => Math.random()), [m, k]),
        b: new ort.Tensor('float32', Float32Array.from({ length: k * n }, () => Math.random()), [k, n]),
      };
      for (let i = 0; i < 3; i++) await session.run(feeds);
      for (let i = 0; i < 10; i++) {
        const started = performance.now();
        await session.run(feeds);
        best = Math.max(best, (2 * m * k * n) / ((performance.now() - started) / 1000));
      }
    }
  } finally {
    await session.release();
  }
  return best;
}

interface ProcessRun {
  wallMs: number;
  loadMs: number;
  samplingMs: number;
  modelCallMs: number;
  writeMs: number;
  totalMs: number;
}

async function generateProcess(command: string, args: string[], model: string, out: string): Promise<ProcessRun> {
  const generateArgs = ['generate', '--model', model, '--count', `${IMAGES}`, '--seed', `${SEED}`, '--cfg', `${CFG}`, '--steps', `${STEPS}`, '--out', out, '--json', '--force'];
  const started = performance.now();
  const stdout = await new Promise<string>((resolve, reject) => {
    const child = spawn(command, [...args, ...generateArgs], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    let errors = '';
    child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`generate exited ${code}: ${errors}`))));
  });
  const wallMs = performance.now() - started;
  const summary = JSON.parse(stdout) as { elapsed_ms: number; model_call_ms: number; load_ms: number; write_ms: number; total_ms: number };
  return {
    wallMs,
    loadMs: summary.load_ms,
    samplingMs: summary.elapsed_ms,
    modelCallMs: summary.model_call_ms,
    writeMs: summary.write_ms,
    totalMs: summary.total_ms,
  };
}

function medianRun(runs: ProcessRun[]): ProcessRun {
  // The run with the median wall time, so that its parts add up.
  return [...runs].sort((a, b) => a.wallMs - b.wallMs)[Math.floor(runs.length / 2)] as ProcessRun;
}

async function referenceSeconds(pythonExe: string, checkpoint: string): Promise<number> {
  const stdout = await run(pythonExe, ['-m', 'pixelflow.bench', checkpoint, '--batch', `${IMAGES}`, '--steps', `${STEPS}`, '--cfg', `${CFG}`, '--repeats', `${repeats}`], pythonEnv());
  const { seconds } = JSON.parse(stdout.trim().split('\n').at(-1) as string) as { seconds: number[] };
  return median(seconds);
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const percent = (x: number) => `${(100 * x).toFixed(0)}%`;

const reference = await findReferencePython();
if (!reference) throw new Error('bench:cpu needs a python with torch for the model and the reference (see pixelflow convert --help)');
const { model, checkpoint } = await ensureModel(reference);
const dir = await loadModelDir(model);
const out = await mkdtemp(join(tmpdir(), 'pixelflow-bench-cpu-'));
try {
  // One run first, untimed: it saves the CPU session (packages/onnx/src/session-cache.ts) that every
  // later run loads, as a user's second run would, and warms the disk cache.
  await generateProcess(CLI.command, CLI.args, model, out);
  const direct: ProcessRun[] = [];
  const viaPnpm: ProcessRun[] = [];
  for (let r = 0; r < repeats; r++) {
    direct.push(await generateProcess(CLI.command, CLI.args, model, out));
    viaPnpm.push(await generateProcess('pnpm', ['-s', 'pixelflow'], model, out));
  }
  const peak = await matmulPeak(dir, reference.python.executable);
  const flops = jobFlops(dir);
  const referenceS = await referenceSeconds(reference.python.executable, checkpoint);
  const largest = dir.manifest.resolution;
  const profile = await profileOperators(dir, [(rowsPerStage(dir).at(-1) as number), dir.manifest.architecture.in_channels, largest, largest]);

  const params = dir.manifest.architecture;
  console.log(
    `${dir.manifest.name}: ${IMAGES} images, Euler ${STEPS} steps per stage, CFG ${CFG}, seed ${SEED}; ` +
      `${params.num_attention_heads} heads x ${params.attention_head_dim}, depth ${params.depth}, patch ${params.patch_size}, ` +
      `${dir.manifest.stages.map((s) => s.resolution).join('/')} px; ${availableParallelism()} CPUs (${cpus()[0]?.model ?? 'unknown'}); ` +
      `median of ${repeats} runs`,
  );
  console.log(reference.note);
  console.log('');
  const processRow = (label: string, r: ProcessRun) => {
    const outside = r.wallMs - r.samplingMs;
    return [label, seconds(r.wallMs), seconds(r.wallMs - r.totalMs), seconds(r.loadMs), seconds(r.samplingMs), seconds(r.modelCallMs), seconds(r.writeMs), seconds(outside), `${(referenceS * 1000 / r.wallMs).toFixed(2)}x`];
  };
  console.log(
    table(
      ['whole process', 'wall', 'process start + exit', 'model load', 'sampling', 'of which model calls', 'PNG writing', 'all but sampling', 'reference pipeline / ours'],
      [processRow(CLI.label, medianRun(direct)), processRow('pnpm pixelflow', medianRun(viaPnpm))],
    ),
  );
  console.log('');
  const calls = medianRun(direct).modelCallMs / 1000;
  console.log(
    table(
      ['job FLOPs', 'matrix-product peak (onnxruntime, this CPU)', 'arithmetic floor', 'model calls', 'share of peak', 'reference pipeline call'],
      [[`${(flops / 1e12).toFixed(2)} TFLOP`, `${(peak / 1e9).toFixed(0)} GFLOP/s`, seconds((flops / peak) * 1000), seconds(calls * 1000), percent(flops / peak / calls), seconds(referenceS * 1000)]],
    ),
  );
  console.log('');
  const kernelMs = profile.operators.reduce((sum, op) => sum + op.ms, 0);
  console.log(`One ${largest} px call, batch ${profile.shape[0]}: ${profile.runMs.toFixed(0)} ms (onnxruntime's profiler, per operator type)`);
  console.log(
    table(
      ['operator', 'nodes', 'ms', 'share'],
      profile.operators.slice(0, 10).map((op) => [op.opType, `${op.nodes}`, op.ms.toFixed(1), percent(op.ms / kernelMs)]),
    ),
  );
} finally {
  await rm(out, { recursive: true, force: true });
}
