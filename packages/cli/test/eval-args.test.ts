import { join } from 'node:path';
import { DEFAULT_MODEL_DIR, loadModelDir } from '@pixelflow/formats';
import type { ModelManifest } from '@pixelflow/schemas';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  batchSeed,
  checkCompatible,
  DEFAULT_CLASSIFIER_DIR,
  formatTables,
  markdownTable,
  parseEvalArgs,
  resolvePlan,
  type CombinationResult,
  type EvalArgs,
} from '../src/commands/eval.ts';
import type { ClassifierDir } from '../src/eval/classifier.ts';
import { UsageError } from '../src/errors.ts';
import { repoRoot } from '../src/repo.ts';

// `pixelflow eval`'s arguments and plan, in process: defaults, the (cfg, steps) combinations and
// their checks against the model, the seeds, what a model must be for the classifier, the tables.
// The same errors as the user sees them (child process, exit 2) are in eval-cli.test.ts.

const TINY = join(repoRoot, 'test/fixtures/tiny');
let manifest: ModelManifest;
beforeAll(async () => {
  manifest = (await loadModelDir(TINY)).manifest;
});

function args(...argv: string[]): EvalArgs {
  const parsed = parseEvalArgs(argv);
  if (parsed === 'help') throw new Error('unexpected help');
  return parsed;
}

function usageMessage(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as Error).message;
  }
  throw new Error('expected a UsageError');
}

describe('parseEvalArgs', () => {
  it('defaults to the shipped model and classifier, 50 per class, seed 0', () => {
    const a = args();
    expect(a).toMatchObject({
      model: DEFAULT_MODEL_DIR,
      classifier: DEFAULT_CLASSIFIER_DIR,
      perClass: 50,
      cfg: undefined,
      steps: undefined,
      seed: 0,
      grid: undefined,
      json: false,
    });
    expect(DEFAULT_MODEL_DIR).toBe(join(repoRoot, 'models/pixelflow-mnist'));
    expect(DEFAULT_CLASSIFIER_DIR).toBe(join(repoRoot, 'models/digit-classifier'));
    expect(parseEvalArgs(['--help'])).toBe('help');
  });

  it('reads lists: --cfg by commas, --steps by semicolons and each setting by commas', () => {
    const a = args('--model', TINY, '--cfg', '1,2.5,4', '--steps', '5;10,10,20,30', '--per-class', '3');
    expect(a.cfg).toEqual([1, 2.5, 4]);
    expect(a.steps).toEqual([5, [10, 10, 20, 30]]);
    expect(a.stepsText).toEqual(['5', '10,10,20,30']);
    expect(a.perClass).toBe(3);
  });

  it.for([
    [['--per-class', '0'], "--per-class must be an integer from 1 to 10000, not '0'"],
    [['--per-class', '2.5'], "--per-class must be an integer from 1 to 10000, not '2.5'"],
    [['--per-class', '10001'], "--per-class must be an integer from 1 to 10000, not '10001'"],
    [['--threads', '0'], "--threads must be an integer from 1 to 1024, not '0'"],
    [['--grid', ' '], '--grid must not be empty'],
    [['--seed', '-1'], "--seed needs a value; write --seed=VALUE for one that starts with '-'"],
    [['--count', '4'], 'unknown option --count (see pixelflow eval --help)'],
  ] as const)('refuses %j', ([argv, message]) => {
    expect(usageMessage(() => parseEvalArgs(argv))).toBe(message);
  });
});

describe('resolvePlan', () => {
  it('defaults to the model defaults: one combination', () => {
    expect(resolvePlan(args(), manifest)).toEqual({
      combinations: [{ cfgScale: 4, steps: [10, 10, 10, 10], solver: 'euler', noiseShift: 1 }],
      seed: 0,
    });
  });

  it('crosses every cfg with every steps setting, cfg first', () => {
    const plan = resolvePlan(args('--cfg', '1,4', '--steps', '2;1,2,3,4', '--shift', '2', '--seed', '7'), manifest);
    expect(plan.seed).toBe(7);
    expect(plan.combinations).toEqual([
      { cfgScale: 1, steps: [2, 2, 2, 2], solver: 'euler', noiseShift: 2 },
      { cfgScale: 1, steps: [1, 2, 3, 4], solver: 'euler', noiseShift: 2 },
      { cfgScale: 4, steps: [2, 2, 2, 2], solver: 'euler', noiseShift: 2 },
      { cfgScale: 4, steps: [1, 2, 3, 4], solver: 'euler', noiseShift: 2 },
    ]);
  });

  it('collapses the steps settings under dopri5, which picks its own steps', () => {
    const plan = resolvePlan(args('--solver', 'dopri5', '--cfg', '1,4', '--steps', '2;3'), manifest);
    expect(plan.combinations).toEqual([
      { cfgScale: 1, steps: null, solver: 'dopri5', noiseShift: 1 },
      { cfgScale: 4, steps: null, solver: 'dopri5', noiseShift: 1 },
    ]);
  });

  it.for([
    [['--cfg', '1,30'], '--cfg must be a number from 1 to 25, not 30'],
    [['--cfg', '1,,4'], '--cfg must be a number from 1 to 25, not ""'],
    [['--steps', '2,2'], '--steps has 2 entries but the model has 4 stages'],
    [['--steps', '2;2,2'], '--steps "2,2" has 2 entries but the model has 4 stages'],
    [['--steps', '2;2,x,2,2'], '--steps "2,x,2,2" entry 2 must be an integer from 1 to 100, not "x"'],
    [['--steps', '101'], '--steps must be an integer from 1 to 100, not 101'],
    [['--shift', '0'], '--shift must be a number from 1 to 100, not 0'],
    [['--solver', 'heun'], '--solver must be "euler" or "dopri5", not "heun"'],
    [['--seed', '4294967296'], '--seed must be an integer from 0 to 4294967295, not 4294967296'],
  ] as const)('refuses %j against the model', ([argv, message]) => {
    expect(usageMessage(() => resolvePlan(args(...argv), manifest))).toBe(message);
  });
});

describe('batchSeed', () => {
  it('gives every image of every batch its own seed, wrapping at 2^32', () => {
    const seeds = new Set<number>();
    for (let batch = 0; batch < 50; batch++) {
      const first = batchSeed(123, batch, 10);
      expect(first).toBe(123 + batch * 10);
      // The sampler gives image c of a batch seed (first + c) mod 2^32.
      for (let c = 0; c < 10; c++) seeds.add((first + c) % 2 ** 32);
    }
    expect(seeds.size).toBe(500);
    expect(batchSeed(2 ** 32 - 5, 1, 10)).toBe(5);
  });
});

describe('checkCompatible', () => {
  const classifier = (classes: number): ClassifierDir => ({
    dir: '/c',
    modelPath: '/c/classifier.onnx',
    info: {
      heldout_accuracy: 0.99,
      heldout_count: 100,
      train_count: 900,
      feature_dim: 2,
      class_names: Array.from({ length: classes }, (_, k) => `digit ${k}`),
      input: 'image',
      outputs: { logits: 'logits', features: 'features' },
    },
    heldout: { dim: 2, mean: new Float64Array(2), cov: new Float64Array(4) },
  });

  it('accepts a 10-class 32x32 RGB model', () => {
    expect(() => checkCompatible(manifest, classifier(10))).not.toThrow();
  });

  it('refuses another class count, another resolution or other channels', () => {
    expect(usageMessage(() => checkCompatible(manifest, classifier(9)))).toBe(
      'the model "tiny-random" has 10 classes but /c/classifier.json has 9: it cannot score this model',
    );
    expect(usageMessage(() => checkCompatible({ ...manifest, resolution: 64 }, classifier(10)))).toBe(
      'the model "tiny-random" makes 64x64 images with 3 channels, but the classifier scores 32x32 RGB (3 channels)',
    );
    const gray = { ...manifest, architecture: { ...manifest.architecture, in_channels: 1, out_channels: 1 } };
    expect(usageMessage(() => checkCompatible(gray, classifier(10)))).toMatch(/makes 32x32 images with 1 channels/);
  });
});

describe('tables', () => {
  it('pads markdown columns and aligns numbers right', () => {
    expect(markdownTable(['a', 'long header'], [['1', 'x'], ['100', 'yy']], [true, false])).toBe(
      ['|   a | long header |', '|----:|-------------|', '|   1 | x           |', '| 100 | yy          |'].join('\n'),
    );
  });

  it('has one row per combination and one column per class', () => {
    const result = (cfgScale: number, accuracy: number[]): CombinationResult => ({
      combination: { cfgScale, steps: [10, 10], solver: 'euler', noiseShift: 1 },
      images: 20,
      accuracy: accuracy.reduce((a, b) => a + b, 0) / accuracy.length,
      perClassAccuracy: accuracy,
      weakestClass: accuracy.indexOf(Math.min(...accuracy)),
      frechetDistance: 12.3456,
      imagesPerSecond: 4.5,
      modelCallsPerImage: 20,
      samplingMs: 4000,
      classifierMs: 10,
    });
    const text = formatTables([result(1, [1, 0.5]), result(4, [0.9, 1])], ['zero', 'one']);
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^\| cfg \| steps +\| solver \| accuracy \| weakest class +\| Fréchet distance \| images\/s \| model calls\/image \|$/);
    expect(lines[2]).toMatch(/^\| +1 \| 10,10 +\| euler +\| +75\.0% \| one \(50\.0%\) +\| +12\.35 \| +4\.50 \| +20 \|$/);
    expect(lines[3]).toMatch(/^\| +4 \| 10,10 +\| euler +\| +95\.0% \| zero \(90\.0%\) +\|/);
    expect(text).toContain('Accuracy per class (%; 0 = zero, 1 = one):');
    expect(lines.slice(-3)).toEqual(['|   1 | 10,10 | 100 |  50 |', '|   4 | 10,10 |  90 | 100 |', '']);
  });
});
