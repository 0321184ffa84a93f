import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelDir, readPngText } from '@pixelflow/formats';
import { OnnxModel } from '@pixelflow/onnx';
import { sample } from '@pixelflow/sampler';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLASSIFIER_FILES } from '../src/eval/classifier.ts';
import { repoRoot } from '../src/repo.ts';
import { pixelflow } from './support/run-cli.ts';

// `pixelflow eval` as users run it: a real child process on the committed tiny model (random
// weights, 10 classes, 32x32 RGB: accuracy is about chance, so the structure is checked, not the
// quality) and the shipped digit classifier, real onnxruntime, real files.

const TINY = join(repoRoot, 'test/fixtures/tiny');
const CLASSIFIER = join(repoRoot, 'models/digit-classifier');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pixelflow-eval-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Summary {
  model: { name: string };
  class_names: string[];
  per_class: number;
  images_per_combination: number;
  seed: number;
  combinations: {
    cfg_scale: number;
    steps: number[] | null;
    solver: string;
    images: number;
    accuracy: number;
    per_class_accuracy: number[];
    weakest_class: { label: number; name: string; accuracy: number };
    frechet_distance: number;
    images_per_second: number;
    model_calls_per_image: number;
  }[];
  grid: { path: string; parameters: Record<string, unknown> } | null;
}

describe('pixelflow eval', () => {
  it('evaluates every (cfg, steps) combination and writes the grid of the first', async () => {
    const grid = join(dir, 'out', 'grid.png');
    const result = await pixelflow(['eval', '--model', TINY, '--per-class', '2', '--steps', '2', '--cfg', '1,4', '--grid', grid, '--json', '--threads', '1']);
    expect(result.stderr).not.toMatch(/error/i);
    expect(result.code).toBe(0);
    for (const line of result.stderr.trimEnd().split('\n')) expect(line).toMatch(/^pixelflow eval: /);

    const summary = JSON.parse(result.stdout) as Summary;
    expect(summary).toMatchObject({ model: { name: 'tiny-random' }, per_class: 2, images_per_combination: 20, seed: 0 });
    expect(summary.class_names).toHaveLength(10);
    expect(summary.combinations.map((c) => [c.cfg_scale, c.steps, c.solver])).toEqual([
      [1, [2, 2, 2, 2], 'euler'],
      [4, [2, 2, 2, 2], 'euler'],
    ]);
    for (const c of summary.combinations) {
      expect(c.images).toBe(20);
      expect(c.accuracy).toBeGreaterThanOrEqual(0);
      expect(c.accuracy).toBeLessThanOrEqual(1);
      expect(c.per_class_accuracy).toHaveLength(10);
      // Two images per class: each class scores 0, 1/2 or 1, and they average to the accuracy.
      for (const a of c.per_class_accuracy) expect([0, 0.5, 1]).toContain(a);
      expect(c.per_class_accuracy.reduce((s, a) => s + a, 0) / 10).toBeCloseTo(c.accuracy, 12);
      expect(c.weakest_class.accuracy).toBe(Math.min(...c.per_class_accuracy));
      expect(c.weakest_class.name).toBe(summary.class_names[c.weakest_class.label]);
      expect(Number.isFinite(c.frechet_distance)).toBe(true);
      expect(c.frechet_distance).toBeGreaterThanOrEqual(0);
      expect(c.images_per_second).toBeGreaterThan(0);
      // Euler, 2 steps in each of 4 stages: 8 model calls for every image.
      expect(c.model_calls_per_image).toBe(8);
    }
    expect(summary.grid?.path).toBe(grid);

    // 10 rows (classes) x 2 columns (per class) of 32x32 images, 2 px gaps.
    const png = await readFile(grid);
    const decoded = PNG.sync.read(png, { checkCRC: true });
    expect([decoded.width, decoded.height]).toEqual([2 * 32 + 2, 10 * 32 + 9 * 2]);
    const parameters = JSON.parse(readPngText(png)['parameters'] ?? 'null') as Record<string, unknown>;
    expect(parameters).toMatchObject({ model: 'tiny-random', per_class: 2, seed: 0, cfg_scale: 1, steps: [2, 2, 2, 2], solver: 'euler' });

    // The grid's cell (class 3, sample 1) is the sampler's own image: batch 1 of classes 0..9, seed 0 + 1 * 10.
    const model = await loadModelDir(TINY);
    const onnx = await OnnxModel.load(model, { intraOpNumThreads: 1 });
    try {
      const own = await sample({
        model: onnx,
        manifest: model.manifest,
        classLabels: Array.from({ length: 10 }, (_, k) => k),
        solver: 'euler',
        cfgScale: 1,
        noiseShift: 1,
        steps: [2, 2, 2, 2],
        seed: 10,
      });
      const left = 32 + 2;
      const top = 3 * (32 + 2);
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          const at = ((top + y) * decoded.width + left + x) * 4;
          const expected = own.images.subarray(((3 * 32 + y) * 32 + x) * 3, ((3 * 32 + y) * 32 + x) * 3 + 3);
          expect([...decoded.data.subarray(at, at + 3)]).toEqual([...expected]);
        }
      }
    } finally {
      await onnx.dispose();
    }
  });

  it('prints its usage for --help and is listed in pixelflow --help', async () => {
    const [own, all] = await Promise.all([pixelflow(['eval', '--help']), pixelflow(['--help'])]);
    expect(own.code).toBe(0);
    expect(own.stdout).toMatch(/^Usage: pixelflow eval \[options\]/);
    expect(all.stdout).toMatch(/\n {2}eval {7}Evaluate a class-conditional model/);
  });
});

describe('pixelflow eval: bad input', () => {
  const paths = { nineClassModel: '', nineClassClassifier: '', badInfo: '' };

  beforeAll(async () => {
    // The tiny model's pixelflow.json turned into a 9-class model (refused before its ONNX loads).
    paths.nineClassModel = join(dir, 'nine-class-model');
    await mkdir(paths.nineClassModel);
    await copyFile(join(TINY, 'model.onnx'), join(paths.nineClassModel, 'model.onnx'));
    const manifest = JSON.parse(await readFile(join(TINY, 'pixelflow.json'), 'utf8')) as {
      architecture: { num_classes: number };
      classes: { names: string[]; null_label: number };
    };
    manifest.architecture.num_classes = 9;
    manifest.classes = { names: manifest.classes.names.slice(0, 9), null_label: 9 };
    await writeFile(join(paths.nineClassModel, 'pixelflow.json'), JSON.stringify(manifest));
    // Classifier folders: one whose classifier.json lists 9 classes, one without feature_dim.
    const info = JSON.parse(await readFile(join(CLASSIFIER, CLASSIFIER_FILES.info), 'utf8')) as { class_names: string[] };
    for (const [key, patch] of [
      ['nineClassClassifier', { class_names: info.class_names.slice(0, 9) }],
      ['badInfo', { feature_dim: undefined }],
    ] as const) {
      const folder = join(dir, key);
      await mkdir(folder);
      for (const file of Object.values(CLASSIFIER_FILES)) await copyFile(join(CLASSIFIER, file), join(folder, file));
      await writeFile(join(folder, CLASSIFIER_FILES.info), JSON.stringify({ ...info, ...patch }));
      paths[key] = folder;
    }
  });

  // Lazy: the temporary folder exists only once the tests run.
  const cases: [string, () => string[], () => string | RegExp][] = [
    ['an unknown option', () => ['--size', '64'], () => 'unknown option --size (see pixelflow eval --help)'],
    ['--per-class 0', () => ['--per-class', '0'], () => "--per-class must be an integer from 1 to 10000, not '0'"],
    ['a CFG out of range in the list', () => ['--cfg', '1,30'], () => '--cfg must be a number from 1 to 25, not 30'],
    ['a steps setting of the wrong length', () => ['--steps', '2;2,2'], () => '--steps "2,2" has 2 entries but the model has 4 stages'],
    ['a non-numeric seed', () => ['--seed', 'abc'], () => '--seed must be an integer from 0 to 4294967295, not "abc"'],
    ['a missing model folder', () => ['--model', join(dir, 'nope')], () => `model folder not found: ${join(dir, 'nope')}`],
    ['a missing classifier folder', () => ['--classifier', join(dir, 'nope')], () => `classifier folder not found: ${join(dir, 'nope')}`],
    ['an invalid classifier.json', () => ['--classifier', paths.badInfo], () => /badInfo\/classifier\.json: feature_dim: /],
    [
      'a classifier of another class count',
      () => ['--classifier', paths.nineClassClassifier],
      () => `the model "tiny-random" has 10 classes but ${join(paths.nineClassClassifier, 'classifier.json')} has 9: it cannot score this model`,
    ],
    [
      'a model of another class count',
      () => ['--model', paths.nineClassModel],
      () => `the model "tiny-random" has 9 classes but ${join(CLASSIFIER, 'classifier.json')} has 10: it cannot score this model`,
    ],
    ['a --grid that is a folder', () => ['--grid', dir], () => `--grid ${dir} is a folder; give a file name such as ${join(dir, 'grid.png')}`],
  ];

  // Independent processes: run them side by side.
  it.concurrent.for(cases)('exits 2 with one line for %s', async ([, args, message], { expect }) => {
    const grid = join(dir, `bad-${args().join('-').replace(/\W+/g, '_').slice(-40)}.png`);
    // Later flags win in parseArgs, so a case's own --model or --grid replaces these.
    const result = await pixelflow(['eval', '--model', TINY, '--per-class', '1', '--steps', '1', '--grid', grid, ...args()]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    const lines = result.stderr.split('\n');
    expect(lines, result.stderr).toHaveLength(2);
    expect(lines[1]).toBe('');
    const prefix = 'pixelflow eval: ';
    expect(lines[0]?.startsWith(prefix), lines[0]).toBe(true);
    const text = lines[0]?.slice(prefix.length) ?? '';
    const expected = message();
    if (typeof expected === 'string') expect(text).toBe(expected);
    else expect(text).toMatch(expected);
    expect(existsSync(grid), 'no grid written').toBe(false);
  });
});
