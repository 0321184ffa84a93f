// bench/sampler: our sampler on onnxruntime-node against the PyTorch reference sampler, same model,
// same settings, same machine, one script. `pnpm bench:sampler [--model DIR --checkpoint DIR]`.
//
// For each model and batch size (1 and 4), Euler with 10 steps on each stage and CFG 4, it prints
// images per second, milliseconds per model call, the share of wall time spent outside
// `session.run` (our overhead: worker-thread messaging, guidance, Euler updates, noise, upsampling)
// and our speed relative to the reference. Targets: overhead < 3%, ratio >= 1.

import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pythonEnv } from '@pixelflow/cli/python';
import { loadModelDir } from '@pixelflow/formats';
import { OnnxModel } from '@pixelflow/onnx';
import { sample } from '@pixelflow/sampler';
import { median } from './numbers.ts';
import { findReferencePython } from './reference-python.ts';

const FIXTURE = fileURLToPath(new URL('../test/fixtures/tiny/', import.meta.url));
const FIXTURE_CHECKPOINT = fileURLToPath(new URL('../test/fixtures/tiny-checkpoint/', import.meta.url));
const STEPS = 10;
const CFG = 4;

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    checkpoint: { type: 'string' },
    repeats: { type: 'string', default: '5' },
    batches: { type: 'string', default: '1,4' },
  },
});
const repeats = Number(values.repeats);
const batches = values.batches.split(',').map(Number);
const targets: { model: string; checkpoint: string | undefined }[] = [{ model: FIXTURE, checkpoint: FIXTURE_CHECKPOINT }];
if (values.model) targets.push({ model: values.model, checkpoint: values.checkpoint });

interface Row {
  model: string;
  batch: number;
  imagesPerSecond: number;
  msPerCall: number;
  overhead: number;
  referenceImagesPerSecond: number | null;
}

async function ours(modelPath: string, batch: number): Promise<Omit<Row, 'model' | 'referenceImagesPerSecond'>> {
  const dir = await loadModelDir(modelPath);
  const model = await OnnxModel.load(dir);
  try {
    const stages = dir.manifest.scheduler.num_stages;
    const run = (seed: number) =>
      sample({
        model,
        manifest: dir.manifest,
        classLabels: Array.from({ length: batch }, (_, i) => i % dir.manifest.architecture.num_classes),
        solver: 'euler',
        cfgScale: CFG,
        noiseShift: 1,
        steps: Array.from({ length: stages }, () => STEPS),
        seed,
      });
    await run(0); // warm-up: first runs at each shape allocate and plan
    const walls: number[] = [];
    const before = model.stats();
    for (let r = 1; r <= repeats; r++) walls.push((await run(r)).elapsedMs);
    const after = model.stats();
    const wall = walls.reduce((a, b) => a + b, 0);
    const calls = after.calls - before.calls;
    return {
      batch,
      imagesPerSecond: (batch * 1000) / median(walls),
      msPerCall: wall / calls,
      overhead: 1 - (after.runMs - before.runMs) / wall,
    };
  } finally {
    await model.dispose();
  }
}

const referencePython = await findReferencePython();

async function reference(checkpoint: string, batch: number): Promise<number | null> {
  if (!referencePython) return null;
  const { python } = referencePython;
  const args = ['-m', 'pixelflow.bench', checkpoint, '--batch', `${batch}`, '--steps', `${STEPS}`, '--cfg', `${CFG}`, '--repeats', `${repeats}`];
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(python.executable, args, { env: pythonEnv() }, (error, out, err) => (error ? reject(new Error(err || error.message)) : resolve(out))),
  );
  const { seconds } = JSON.parse(stdout.trim().split('\n').at(-1) as string) as { seconds: number[] };
  return batch / median(seconds);
}

const rows: Row[] = [];
for (const target of targets) {
  const name = (await loadModelDir(target.model)).manifest.name;
  for (const batch of batches) {
    const row = await ours(target.model, batch);
    const referenceImagesPerSecond = target.checkpoint ? await reference(target.checkpoint, batch) : null;
    rows.push({ model: name, ...row, referenceImagesPerSecond });
    process.stderr.write(`measured ${name} batch ${batch}\n`);
  }
}

const header = ['model', 'batch', 'images/s', 'ms/model call', 'overhead', 'reference images/s', 'ours / reference'];
const table = rows.map((r) => [
  r.model,
  `${r.batch}`,
  r.imagesPerSecond.toFixed(2),
  r.msPerCall.toFixed(2),
  `${(100 * r.overhead).toFixed(1)}%`,
  r.referenceImagesPerSecond === null ? 'n/a' : r.referenceImagesPerSecond.toFixed(2),
  r.referenceImagesPerSecond === null ? 'n/a' : `${(r.imagesPerSecond / r.referenceImagesPerSecond).toFixed(2)}x`,
]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => (row[i] as string).length)));
const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
console.log(`Euler ${STEPS} steps per stage, CFG ${CFG}, ${repeats} timed runs after one warm-up (median images/s)`);
console.log(referencePython?.note ?? 'reference: no python with torch found (see pixelflow convert --help)');
console.log(line(header));
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
for (const row of table) console.log(line(row));
