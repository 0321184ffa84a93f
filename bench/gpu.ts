// bench/gpu: our sampler on onnxruntime's CUDA provider, measured beside the CPU and beside PyTorch
// on the same card, in one process. `bench/gpu/run.sh` runs it on the GPU machine (see
// bench/gpu/README.md); on a machine without a GPU, `--provider cpu` rehearses every step.
//
//   node bench-gpu.mjs --provider cuda --fp32 DIR --fp16 DIR --fp16-multihead DIR --checkpoint DIR --out DIR
//
// 1. The embedded model on the CPU and on --provider: load and warm-up time, and the same job's
//    final float images (max abs difference) and PNG bytes (identical or not).
// 2. Each converted model (--fp32, --fp16, --fp16-multihead: attention as onnxruntime's fused
//    MultiHeadAttention): session creation, the first (cold) job, then the demo's
//    default job (Euler 10 steps per stage, CFG 4, shift 1) at each image count: median seconds per
//    job and images/s; one Dopri5 job; peak GPU memory; and fp16 against fp32 on the same noise.
// 3. The PyTorch reference on the same weights, device and noise, the way the authors' demo runs it
//    (bf16 autocast, fused attention): seconds per job, and ours / PyTorch.
// 4. Continuous batching on one converted model (--batching, default: the fp16 one): ms per call by
//    batch size at each stage, then --batch-jobs one-image jobs run one after another and all at
//    once through the worker's BatchingModel (padded to 1,2,4,8,16 on CUDA), jobs/s of each, and
//    how far the batched images are from the solo ones.
// Results go to OUT/results.json and OUT/table.md as each part finishes, so a run cut short keeps
// what it measured.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_MODEL_DIR, encodeGeneratedPngs, loadModelDir, readNpy, writeNpy, type ModelDir } from '@pixelflow/formats';
import { OnnxModel, type OnnxProvider } from '@pixelflow/onnx';
import { BatchingModel, noiseShapes, sample, sampleOptionsFor, type SampleResult, type VelocityModel } from '@pixelflow/sampler';
import { parseGenerationRequest, resolveGeneration, type ResolvedGeneration } from '@pixelflow/schemas';
import { batchScaling, SCALING_BATCHES } from './batch-scaling.ts';
import { median } from './numbers.ts';

const { values } = parseArgs({
  options: {
    provider: { type: 'string', default: 'cuda' },
    'device-id': { type: 'string', default: '0' },
    embedded: { type: 'string', default: DEFAULT_MODEL_DIR },
    fp32: { type: 'string' },
    fp16: { type: 'string' },
    'fp16-multihead': { type: 'string' },
    checkpoint: { type: 'string' },
    python: { type: 'string', default: 'python3' },
    counts: { type: 'string', default: '1,4,8' },
    repeats: { type: 'string', default: '2' },
    seed: { type: 'string', default: '42' },
    out: { type: 'string', default: 'bench-gpu-out' },
    batching: { type: 'string' },
    'batch-jobs': { type: 'string', default: '8' },
  },
});
const provider = values.provider as OnnxProvider;
if (provider !== 'cuda' && provider !== 'cpu') throw new Error(`--provider must be cuda or cpu, not ${values.provider}`);
const deviceId = Number(values['device-id']);
const counts = values.counts.split(',').map(Number);
const repeats = Number(values.repeats);
const seed = Number(values.seed);
const outDir = resolve(values.out);
await mkdir(outDir, { recursive: true });

const results: Record<string, unknown> = { provider, started_at: new Date().toISOString(), node: process.version };

async function save(): Promise<void> {
  await writeFile(join(outDir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(join(outDir, 'table.md'), tables());
}

function log(message: string): void {
  process.stderr.write(`bench/gpu: ${message}\n`);
}

const seconds = (ms: number): number => Number((ms / 1000).toFixed(3));

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`compared arrays differ in length (${a.length} vs ${b.length})`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs((a[i] as number) - (b[i] as number)));
  return max;
}

/** Peak GPU memory in use, sampled by nvidia-smi every 50 ms; null without nvidia-smi (a CPU rehearsal). */
class GpuMemory {
  private peak = 0;
  private readonly child: ChildProcess | null;
  private readonly baseline: Promise<number | null>;

  constructor() {
    let resolveBaseline: (value: number | null) => void = () => undefined;
    this.baseline = new Promise((r) => (resolveBaseline = r));
    if (provider !== 'cuda') {
      this.child = null;
      resolveBaseline(null);
      return;
    }
    this.child = spawn('nvidia-smi', ['--query-gpu=memory.used', '--format=csv,noheader,nounits', '-lms', '50', '-i', String(deviceId)]);
    this.child.on('error', () => resolveBaseline(null));
    let first = true;
    this.child.stdout?.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        const mib = Number(line.trim());
        if (!line.trim() || !Number.isFinite(mib)) continue;
        if (first) {
          first = false;
          resolveBaseline(mib);
        }
        this.peak = Math.max(this.peak, mib);
      }
    });
  }

  /** MiB above what was in use when sampling began. */
  async stop(): Promise<number | null> {
    const baseline = await this.baseline;
    this.child?.kill();
    return baseline === null ? null : this.peak - baseline;
  }
}

function defaultJob(dir: ModelDir, numImages: number, solver: 'euler' | 'dopri5' = 'euler'): ResolvedGeneration {
  // The demo's class, daisy, where the model has it.
  const daisy = dir.manifest.classes.names.indexOf('daisy');
  const request = parseGenerationRequest({
    class: daisy >= 0 ? daisy : dir.manifest.defaults.class_label,
    num_images: numImages,
    seed,
    cfg_scale: 4,
    noise_shift: 1,
    solver,
    ...(solver === 'euler' && { steps: 10 }),
  });
  return resolveGeneration(request, dir.manifest, () => seed);
}

function run(model: VelocityModel, dir: ModelDir, job: ResolvedGeneration): Promise<SampleResult> {
  return sample({ ...sampleOptionsFor(job, dir.manifest), model });
}

/** The worker's warm-up: every stage resolution at batch 1, 2, the default count and twice that. */
async function warmUp(model: OnnxModel, dir: ModelDir): Promise<number> {
  const { manifest } = dir;
  const started = performance.now();
  const images = manifest.defaults.num_images;
  for (const stage of manifest.stages) {
    for (const batch of new Set([1, 2, images, 2 * images])) {
      const side = stage.resolution;
      const channels = manifest.architecture.in_channels;
      await model.predict(
        new Float32Array(batch * channels * side * side),
        [batch, channels, side, side],
        new Float32Array(batch).fill(stage.timestep_first),
        new BigInt64Array(batch).fill(BigInt(manifest.classes.null_label)),
      );
    }
  }
  return performance.now() - started;
}

async function timedLoad(dir: ModelDir, on: OnnxProvider): Promise<{ model: OnnxModel; ms: number }> {
  const started = performance.now();
  const model = await OnnxModel.load(dir, { provider: on, deviceId });
  if (model.provider !== on) throw new Error(`asked for ${on}, got ${model.provider}`);
  return { model, ms: performance.now() - started };
}

// 1. The embedded model, CPU against --provider.
async function embedded(): Promise<void> {
  const dir = await loadModelDir(values.embedded);
  const job = defaultJob(dir, dir.manifest.defaults.num_images);
  const measured: { load_s: number; warmup_s: number; job_s: number; final: Float32Array; pngs: Buffer[] }[] = [];
  for (const on of ['cpu', provider] as const) {
    const { model, ms } = await timedLoad(dir, on);
    try {
      const warm = await warmUp(model, dir);
      const result = await run(model, dir, job);
      measured.push({
        load_s: seconds(ms),
        warmup_s: seconds(warm),
        job_s: seconds(result.elapsedMs),
        final: result.stageEnds.at(-1) as Float32Array,
        pngs: encodeGeneratedPngs(result, job, dir.manifest, false),
      });
    } finally {
      await model.dispose();
    }
  }
  const [cpu, gpu] = measured as [(typeof measured)[0], (typeof measured)[0]];
  results.embedded = {
    model: dir.manifest.name,
    job: { num_images: job.num_images, class: job.class_name, seed: job.seed, steps: job.steps, cfg_scale: job.cfg_scale },
    cpu: { load_s: cpu.load_s, warmup_s: cpu.warmup_s, job_s: cpu.job_s },
    // In a CPU rehearsal this is a second CPU session: the comparison's code path, not its figure.
    [provider === 'cpu' ? 'cpu_again' : provider]: { load_s: gpu.load_s, warmup_s: gpu.warmup_s, job_s: gpu.job_s },
    max_abs_diff_final_float: maxAbsDiff(cpu.final, gpu.final),
    png_bytes_identical: cpu.pngs.every((png, i) => png.equals(gpu.pngs[i] as Buffer)),
  };
  await save();
}

// 2. A converted model on --provider.
const LABELS = ['fp32', 'fp16', 'fp16-multihead'] as const;
type Label = (typeof LABELS)[number];
const finals: Partial<Record<Label, Float32Array>> = {};
let noiseDumped = false;
async function converted(label: Label, path: string): Promise<void> {
  const dir = await loadModelDir(path);
  const memory = new GpuMemory();
  const { model, ms } = await timedLoad(dir, provider);
  const entry: Record<string, unknown> = { model: dir.manifest.name, dtype: dir.manifest.dtype, session_create_s: seconds(ms) };
  results[label] = entry;
  try {
    const first = await run(model, dir, defaultJob(dir, 4));
    entry.first_job_s = seconds(first.elapsedMs);
    log(`${label}: session ${entry.session_create_s} s, first job ${entry.first_job_s} s`);
    const perCount: Record<string, unknown> = {};
    entry.euler = perCount;
    for (const count of counts) {
      const job = defaultJob(dir, count);
      const times: number[] = [];
      let last: SampleResult | undefined;
      for (let r = 0; r < repeats; r++) {
        last = await run(model, dir, job);
        times.push(last.elapsedMs);
      }
      const s = median(times) / 1000;
      perCount[count] = { seconds_per_job: Number(s.toFixed(3)), images_per_s: Number((count / s).toFixed(3)), model_calls: last?.modelCalls, runs_s: times.map(seconds) };
      if (count === 4 && last) {
        finals[label] = last.stageEnds.at(-1) as Float32Array;
        if (!noiseDumped) await dumpNoise(dir, last);
      }
      log(`${label}: ${count} images ${s.toFixed(3)} s/job`);
      await save();
    }
    const dopri = await run(model, dir, defaultJob(dir, 4, 'dopri5'));
    entry.dopri5 = { num_images: 4, seconds_per_job: seconds(dopri.elapsedMs), model_calls: dopri.modelCalls };
  } finally {
    await model.dispose();
    entry.peak_gpu_memory_mib = await memory.stop();
    await save();
  }
}

/** The default job's noise, for the PyTorch reference to start from the same numbers. */
async function dumpNoise(dir: ModelDir, result: SampleResult): Promise<void> {
  const noiseDir = join(outDir, 'noise');
  await mkdir(noiseDir, { recursive: true });
  const shapes = noiseShapes(dir.manifest, 4);
  const tensors = [result.noise.stage0, ...result.noise.blocks];
  for (const [k, shape] of shapes.entries()) {
    const name = k === 0 ? 'noise_stage0.npy' : `noise_block_${k}.npy`;
    await writeNpy(join(noiseDir, name), { dtype: '<f4', shape: [...shape], data: tensors[k] as Float32Array });
  }
  noiseDumped = true;
}

// 3. The PyTorch reference on the same weights, device and noise.
async function pytorch(checkpoint: string, classLabel: number): Promise<void> {
  const torchOut = join(outDir, 'pytorch-final.npy');
  const args = [
    '-m', 'pixelflow.bench', checkpoint, '--device', provider === 'cuda' ? `cuda:${deviceId}` : 'cpu',
    '--autocast', 'bf16', '--steps', '10', '--cfg', '4', '--shift', '1', '--labels', String(classLabel),
    '--repeats', String(repeats), '--out', torchOut,
    // Our noise when one of ours ran; otherwise PyTorch's own, for its timing alone.
    ...(noiseDumped ? ['--noise', join(outDir, 'noise')] : ['--batch', '4']),
  ];
  const env = { ...process.env, PYTHONPATH: resolve('pytorch') };
  const stdout = await new Promise<string>((ok, fail) =>
    execFile(values.python, args, { env, maxBuffer: 1 << 24 }, (error, out, err) => (error ? fail(new Error(`${error.message}\n${err}`)) : ok(out))),
  );
  const report = JSON.parse(stdout.trim().split('\n').at(-1) as string) as { seconds: number[]; warmup_seconds: number; load_seconds: number; peak_memory_bytes: number | null; torch: string; model_calls: number };
  const torchFinal = (await readNpy(torchOut)).data as Float32Array;
  const s = median(report.seconds);
  const oursOverPytorch: Record<string, number> = {};
  const diffs: Record<string, number> = {};
  for (const label of LABELS) {
    const ours = results[label] as { euler?: Record<string, { seconds_per_job: number }> } | undefined;
    const oursSeconds = ours?.euler?.['4']?.seconds_per_job;
    if (oursSeconds !== undefined) oursOverPytorch[label] = Number((s / oursSeconds).toFixed(2));
    const final = finals[label];
    if (final) diffs[label] = maxAbsDiff(final, torchFinal);
  }
  results.pytorch = {
    torch: report.torch,
    autocast: 'bf16',
    seconds_per_job: Number(s.toFixed(3)),
    first_job_s: Number(report.warmup_seconds.toFixed(3)),
    load_s: Number(report.load_seconds.toFixed(3)),
    model_calls: report.model_calls,
    peak_memory_mib: report.peak_memory_bytes === null ? null : Math.round(report.peak_memory_bytes / 2 ** 20),
    /** PyTorch seconds per 4-image job over ours: above 1, ours is faster. */
    speedup_of_ours: oursOverPytorch,
    max_abs_diff_vs_ours: diffs,
  };
  await save();
}

async function batching(path: string): Promise<void> {
  const dir = await loadModelDir(path);
  const { model } = await timedLoad(dir, provider);
  const jobs = Number(values['batch-jobs']);
  const entry: Record<string, unknown> = { model: dir.manifest.name, dtype: dir.manifest.dtype, jobs };
  results.batching = entry;
  try {
    const scaling: Record<string, Record<string, number>> = {};
    entry.ms_per_call = scaling;
    await batchScaling(model, dir.manifest, 4, async (side, msByBatch) => {
      const row = Object.fromEntries(Object.entries(msByBatch).map(([batch, ms]) => [batch, Number(ms.toFixed(2))]));
      scaling[side] = row;
      log(`batching: ${side} px ${JSON.stringify(row)}`);
      await save();
    });
    // As the worker runs it on CUDA: merged calls padded to warmed-up sizes.
    const batcher = new BatchingModel(model, { maxBatch: 16, ...(provider === 'cuda' && { batchSizes: SCALING_BATCHES }) });
    const job = (i: number): ResolvedGeneration => ({ ...defaultJob(dir, 1), seed: seed + i });
    const solo: SampleResult[] = [];
    let started = performance.now();
    for (let i = 0; i < jobs; i++) solo.push(await run(model, dir, job(i)));
    const sequentialS = (performance.now() - started) / 1000;
    started = performance.now();
    const merged = await Promise.all(Array.from({ length: jobs }, (_, i) => run(batcher, dir, job(i))));
    const concurrentS = (performance.now() - started) / 1000;
    entry.sequential_jobs_per_s = Number((jobs / sequentialS).toFixed(3));
    entry.concurrent_jobs_per_s = Number((jobs / concurrentS).toFixed(3));
    entry.speedup = Number((sequentialS / concurrentS).toFixed(2));
    entry.max_abs_diff_vs_solo = Math.max(...merged.map((r, i) => maxAbsDiff(r.stageEnds.at(-1) as Float32Array, solo[i]?.stageEnds.at(-1) as Float32Array)));
    log(`batching: ${jobs} jobs, ${entry.sequential_jobs_per_s} jobs/s one after another, ${entry.concurrent_jobs_per_s} at once (${entry.speedup}x)`);
  } finally {
    await model.dispose();
    await save();
  }
}

function tables(): string {
  const lines: string[] = [];
  const e = results.embedded as Record<string, Record<string, number> | number | boolean | string> | undefined;
  if (e) {
    const cpu = e.cpu as Record<string, number>;
    const gpu = e[provider === 'cpu' ? 'cpu_again' : provider] as Record<string, number>;
    lines.push(
      `Embedded model (${String(e.model)}), ${provider} against cpu, same job:`,
      '',
      '| provider | load s | warm-up s | job s |',
      '|---|---|---|---|',
      `| cpu | ${cpu.load_s} | ${cpu.warmup_s} | ${cpu.job_s} |`,
      `| ${provider} | ${gpu.load_s} | ${gpu.warmup_s} | ${gpu.job_s} |`,
      '',
      `Max abs difference of the final float images: ${Number(e.max_abs_diff_final_float).toExponential(2)}; PNG bytes identical: ${String(e.png_bytes_identical)}`,
      '',
    );
  }
  const rows: string[] = [];
  for (const label of LABELS) {
    const m = results[label] as Record<string, unknown> | undefined;
    if (!m) continue;
    const euler = (m.euler ?? {}) as Record<string, { seconds_per_job: number; images_per_s: number }>;
    const cells = counts.map((c) => (euler[c] ? `${euler[c].seconds_per_job} s (${euler[c].images_per_s} img/s)` : 'n/a'));
    const dopri = m.dopri5 as { seconds_per_job: number; model_calls: number } | undefined;
    rows.push(
      `| ours ${label} | ${String(m.session_create_s)} | ${String(m.first_job_s ?? 'n/a')} | ${cells.join(' | ')} | ` +
        `${dopri ? `${dopri.seconds_per_job} s (${dopri.model_calls} calls)` : 'n/a'} | ${String(m.peak_gpu_memory_mib ?? 'n/a')} |`,
    );
  }
  const p = results.pytorch as
    | { load_s: number; first_job_s: number; seconds_per_job: number; peak_memory_mib: number | null; speedup_of_ours: Record<string, number>; max_abs_diff_vs_ours: Record<string, number> }
    | undefined;
  if (p) {
    rows.push(
      `| PyTorch bf16 | ${p.load_s} | ${p.first_job_s} | ${counts.map((c) => (c === 4 ? `${p.seconds_per_job} s` : 'n/a')).join(' | ')} | n/a | ${p.peak_memory_mib ?? 'n/a'} |`,
    );
  }
  if (rows.length > 0) {
    lines.push(
      `Converted model on ${provider}: demo default job (Euler 10 steps per stage, CFG 4, shift 1), median of ${repeats} runs after a first (cold) job:`,
      '',
      `| run | session / load s | first job s | ${counts.map((c) => `${c} images`).join(' | ')} | Dopri5, 4 images | peak GPU MiB |`,
      `|---|---|---|${counts.map(() => '---|').join('')}---|---|`,
      ...rows,
      '',
    );
  }
  for (const label of ['fp16', 'fp16-multihead'] as const) {
    const [a, b] = [finals.fp32, finals[label]];
    if (a && b) lines.push(`${label} against fp32, same noise: max abs difference of the final float images ${maxAbsDiff(a, b).toExponential(2)}`, '');
  }
  if (p) {
    const each = (record: Record<string, number>, format: (v: number) => string): string =>
      Object.entries(record).map(([label, v]) => `${label} ${format(v)}`).join(', ') || 'n/a';
    lines.push(
      `PyTorch seconds / ours seconds (4 images; above 1 = ours faster): ${each(p.speedup_of_ours, (v) => `${v}x`)}`,
      '',
      `Max abs difference of the final float images against PyTorch bf16: ${each(p.max_abs_diff_vs_ours, (v) => v.toExponential(2))}`,
      '',
    );
  }
  const b = results.batching as { model: string; dtype: string; jobs: number; ms_per_call?: Record<string, Record<string, number>>; sequential_jobs_per_s?: number; concurrent_jobs_per_s?: number; speedup?: number; max_abs_diff_vs_solo?: number } | undefined;
  if (b?.ms_per_call) {
    lines.push(
      `Batching, ${b.model} (${b.dtype}) on ${provider}: ms per model call by batch size (rows), and per row against batch 1:`,
      '',
      `| resolution | ${SCALING_BATCHES.map((n) => `batch ${n}`).join(' | ')} |`,
      `|---|${SCALING_BATCHES.map(() => '---|').join('')}`,
      ...Object.entries(b.ms_per_call).map(([side, row]) => `| ${side} px | ${SCALING_BATCHES.map((n) => `${row[n]} (${((row[n] ?? 0) / n / (row[1] ?? 1)).toFixed(2)}x)`).join(' | ')} |`),
      '',
    );
  }
  if (b?.speedup !== undefined) {
    lines.push(
      `${b.jobs} one-image jobs (Euler 10 steps per stage, CFG 4): ${b.sequential_jobs_per_s} jobs/s one after another, ${b.concurrent_jobs_per_s} jobs/s all at once through BatchingModel: ${b.speedup}x; max abs difference from the solo runs ${Number(b.max_abs_diff_vs_solo).toExponential(2)}`,
      '',
    );
  }
  return `${lines.join('\n')}\n`;
}

const failures: string[] = [];
async function part(name: string, body: () => Promise<void>): Promise<void> {
  log(`${name} ...`);
  try {
    await body();
  } catch (error) {
    // One part failing (say, no onnx on the machine to convert with) keeps the others' figures.
    failures.push(`${name}: ${(error as Error).message.split('\n')[0]}`);
    log(`${name} FAILED: ${(error as Error).stack ?? String(error)}`);
  }
  results.failures = failures;
  await save();
}

await part('embedded model', embedded);
for (const label of LABELS) {
  const path = values[label];
  if (path) await part(label, () => converted(label, path));
}
if (values.checkpoint) {
  // Daisy, the demo's class (our models' default class too), unless no converted model says otherwise.
  const firstModel = LABELS.map((label) => values[label]).find((path) => path !== undefined);
  const classLabel = firstModel === undefined ? 985 : defaultJob(await loadModelDir(firstModel), 4).class_label;
  await part('pytorch', () => pytorch(values.checkpoint as string, classLabel));
}
const batchingModel = values.batching ?? values.fp16 ?? values.fp32 ?? (provider === 'cpu' ? values.embedded : undefined);
if (batchingModel) await part('batching', () => batching(batchingModel));
results.finished_at = new Date().toISOString();
await save();
process.stdout.write(tables());
process.exitCode = failures.length > 0 ? 1 : 0;
