import { describe, expect, it } from 'vitest';
import {
  GenerationError,
  GenerationRequest,
  imageParameters,
  imageSeed,
  ImageParameters,
  parseGenerationRequest,
  resolveGeneration,
  ResolvedGeneration,
} from '../src/generation.ts';
import type { ModelManifest } from '../src/model-manifest.ts';
import { exampleManifest } from '../src/testing.ts';

/** exampleManifest: classes cat, dog, daisy (null label 3); 4 stages; defaults euler, CFG 4, shift 1, 10 steps, 4 images, class 2. */
const manifest = exampleManifest();
const noSeed = (): number => expect.unreachable('drawSeed must not be called when the request has a seed');

function withNames(names: string[]): ModelManifest {
  const m = exampleManifest();
  m.classes = { names, null_label: names.length };
  m.architecture.num_classes = names.length;
  return m;
}

/** Expects `run` to throw a GenerationError and returns it. */
function generationError(run: () => unknown): GenerationError {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(GenerationError);
  const error = caught as GenerationError;
  expect(error.message).not.toContain('\n');
  return error;
}

describe('GenerationRequest schema', () => {
  it('accepts a class index or a class name and nothing else required', () => {
    expect(GenerationRequest.parse({ class: 0 })).toEqual({ class: 0 });
    expect(GenerationRequest.parse({ class: 'dog' })).toEqual({ class: 'dog' });
  });

  it('accepts every optional field at the ends of its range', () => {
    const low = { class: 1, num_images: 1, seed: 0, cfg_scale: 1, noise_shift: 1, steps: 1, solver: 'euler' };
    const high = { class: 1, num_images: 8, seed: 4294967295, cfg_scale: 25, noise_shift: 100, steps: [100, 1, 50, 7], solver: 'dopri5' };
    expect(GenerationRequest.parse(low)).toEqual(low);
    expect(GenerationRequest.parse(high)).toEqual(high);
    expect(GenerationRequest.parse({ class: 0, cfg_scale: 4.5, noise_shift: 2.5 })).toMatchObject({ cfg_scale: 4.5 });
  });

  it.each([
    [{}, ['class'], 'class must be a class index (an integer >= 0) or a class name, not nothing'],
    [{ class: -1 }, ['class'], 'class must be a class index (an integer >= 0) or a class name, not -1'],
    [{ class: 1.5 }, ['class'], 'class must be a class index (an integer >= 0) or a class name, not 1.5'],
    [{ class: '' }, ['class'], 'class must be a class index (an integer >= 0) or a class name, not ""'],
    [{ class: null }, ['class'], 'class must be a class index (an integer >= 0) or a class name, not null'],
    [{ class: 0, num_images: 0 }, ['num_images'], 'num_images must be an integer from 1 to 8, not 0'],
    [{ class: 0, num_images: 9 }, ['num_images'], 'num_images must be an integer from 1 to 8, not 9'],
    [{ class: 0, num_images: 2.5 }, ['num_images'], 'num_images must be an integer from 1 to 8, not 2.5'],
    [{ class: 0, seed: -1 }, ['seed'], 'seed must be an integer from 0 to 4294967295, not -1'],
    [{ class: 0, seed: 4294967296 }, ['seed'], 'seed must be an integer from 0 to 4294967295, not 4294967296'],
    [{ class: 0, seed: '42' }, ['seed'], 'seed must be an integer from 0 to 4294967295, not "42"'],
    [{ class: 0, cfg_scale: 0.5 }, ['cfg_scale'], 'cfg_scale must be a number from 1 to 25, not 0.5'],
    [{ class: 0, cfg_scale: 25.1 }, ['cfg_scale'], 'cfg_scale must be a number from 1 to 25, not 25.1'],
    [{ class: 0, cfg_scale: Number.NaN }, ['cfg_scale'], 'cfg_scale must be a number from 1 to 25, not NaN'],
    [{ class: 0, noise_shift: 0 }, ['noise_shift'], 'noise_shift must be a number from 1 to 100, not 0'],
    [{ class: 0, noise_shift: 101 }, ['noise_shift'], 'noise_shift must be a number from 1 to 100, not 101'],
    [{ class: 0, steps: 0 }, ['steps'], 'steps must be an integer from 1 to 100, not 0'],
    [{ class: 0, steps: 101 }, ['steps'], 'steps must be an integer from 1 to 100, not 101'],
    [{ class: 0, steps: [10, 0, 10, 10] }, ['steps', 1], 'steps[1] must be an integer from 1 to 100, not 0'],
    [{ class: 0, steps: [10, 10, 2.5, 10] }, ['steps', 2], 'steps[2] must be an integer from 1 to 100, not 2.5'],
    [
      { class: 0, steps: '10' },
      ['steps'],
      'steps must be an integer from 1 to 100, or a list of them (one per stage), not "10"',
    ],
    [{ class: 0, solver: 'heun' }, ['solver'], 'solver must be "euler" or "dopri5", not "heun"'],
    [{ class: 0, sampler: 'euler' }, ['sampler'], 'sampler is not a generation parameter'],
  ])('rejects %j', (input, field, message) => {
    expect(GenerationRequest.safeParse(input).success).toBe(false);
    const error = generationError(() => parseGenerationRequest(input));
    expect(error.field).toEqual(field);
    expect(error.message).toBe(message);
  });

  it('rejects input that is not an object', () => {
    const error = generationError(() => parseGenerationRequest([1]));
    expect(error.field).toEqual([]);
    expect(error.message).toBe('(root) must be an object, not [1]');
  });

  it('returns the parsed request', () => {
    expect(parseGenerationRequest({ class: 'dog', steps: [1, 2, 3, 4] })).toEqual({ class: 'dog', steps: [1, 2, 3, 4] });
  });
});

describe('resolveGeneration', () => {
  it('fills every absent field from the manifest defaults and draws the seed', () => {
    let draws = 0;
    const resolved = resolveGeneration({ class: 'dog' }, manifest, () => {
      draws++;
      return 123456789;
    });
    expect(draws).toBe(1);
    expect(resolved).toEqual({
      class_label: 1,
      class_name: 'dog',
      num_images: 4,
      seed: 123456789,
      cfg_scale: 4,
      noise_shift: 1,
      steps: [10, 10, 10, 10],
      solver: 'euler',
    });
    expect(ResolvedGeneration.parse(resolved)).toEqual(resolved);
  });

  it('keeps every field the request gives', () => {
    const resolved = resolveGeneration(
      { class: 2, num_images: 2, seed: 7, cfg_scale: 7.5, noise_shift: 3, steps: [1, 2, 3, 4], solver: 'dopri5' },
      manifest,
      noSeed,
    );
    expect(resolved).toEqual({
      class_label: 2,
      class_name: 'daisy',
      num_images: 2,
      seed: 7,
      cfg_scale: 7.5,
      noise_shift: 3,
      steps: [1, 2, 3, 4],
      solver: 'dopri5',
    });
  });

  it('repeats a single steps number for every stage', () => {
    expect(resolveGeneration({ class: 0, seed: 1, steps: 3 }, manifest, noSeed).steps).toEqual([3, 3, 3, 3]);
    const twoStages = exampleManifest();
    twoStages.stages = twoStages.stages.slice(0, 2);
    expect(resolveGeneration({ class: 0, seed: 1, steps: 5 }, twoStages, noSeed).steps).toEqual([5, 5]);
  });

  it('does not share the default steps array with the manifest', () => {
    const m = exampleManifest();
    const resolved = resolveGeneration({ class: 0, seed: 1 }, m, noSeed);
    resolved.steps[0] = 99;
    expect(m.defaults.steps[0]).toBe(10);
  });

  it.each([
    [[10, 10, 10], 'steps has 3 entries but the model has 4 stages'],
    [[10, 10, 10, 10, 10], 'steps has 5 entries but the model has 4 stages'],
    [[10], 'steps has 1 entry but the model has 4 stages'],
    [[], 'steps has 0 entries but the model has 4 stages'],
  ])('rejects steps %j for a 4-stage model', (steps, message) => {
    const error = generationError(() => resolveGeneration({ class: 0, seed: 1, steps }, manifest, noSeed));
    expect(error.field).toEqual(['steps']);
    expect(error.message).toBe(message);
  });

  it('accepts the last class index and rejects the next ones', () => {
    expect(resolveGeneration({ class: 2, seed: 1 }, manifest, noSeed).class_name).toBe('daisy');
    const nullLabel = generationError(() => resolveGeneration({ class: 3, seed: 1 }, manifest, noSeed));
    expect(nullLabel.field).toEqual(['class']);
    expect(nullLabel.message).toBe('class 3 is out of range 0..2 (3 is the null label, the unconditional branch)');
    const beyond = generationError(() => resolveGeneration({ class: 12, seed: 1 }, manifest, noSeed));
    expect(beyond.message).toBe('class 12 is out of range 0..2');
    expect(beyond.reason).toBe('12 is out of range 0..2');
  });

  it('matches a class name exactly before ignoring case', () => {
    const m = withNames(['Crane', 'crane', 'goose']);
    expect(resolveGeneration({ class: 'crane', seed: 1 }, m, noSeed)).toMatchObject({ class_label: 1, class_name: 'crane' });
    expect(resolveGeneration({ class: 'Crane', seed: 1 }, m, noSeed)).toMatchObject({ class_label: 0, class_name: 'Crane' });
    expect(resolveGeneration({ class: 'GOOSE', seed: 1 }, m, noSeed)).toMatchObject({ class_label: 2, class_name: 'goose' });
  });

  it('ignores case and surrounding or repeated spaces when nothing matches exactly', () => {
    const m = withNames(['golden retriever', 'Labrador retriever']);
    expect(resolveGeneration({ class: '  Golden  Retriever ', seed: 1 }, m, noSeed).class_label).toBe(0);
    expect(resolveGeneration({ class: 'labrador retriever', seed: 1 }, m, noSeed)).toMatchObject({
      class_label: 1,
      class_name: 'Labrador retriever',
    });
  });

  it('names the candidates of an ambiguous name', () => {
    const m = withNames(['Crane', 'crane', 'goose']);
    const error = generationError(() => resolveGeneration({ class: 'CRANE', seed: 1 }, m, noSeed));
    expect(error.field).toEqual(['class']);
    expect(error.message).toBe('class "CRANE" matches several classes: 0 "Crane", 1 "crane"; give the class index');
  });

  it('names the candidates when a name appears twice (ImageNet has two "crane"s)', () => {
    const m = withNames(['crane', 'goose', 'crane']);
    const error = generationError(() => resolveGeneration({ class: 'crane', seed: 1 }, m, noSeed));
    expect(error.message).toBe('class "crane" matches several classes: 0 "crane", 2 "crane"; give the class index');
  });

  it('rejects an unknown name and suggests close ones', () => {
    const dgo = generationError(() => resolveGeneration({ class: 'dgo', seed: 1 }, manifest, noSeed));
    expect(dgo.field).toEqual(['class']);
    expect(dgo.message).toBe('class "dgo" is not a class of this model (did you mean "dog"?)');

    const m = withNames(['golden retriever', 'Labrador retriever', 'flat-coated retriever', 'curly-coated retriever', 'daisy']);
    const retriever = generationError(() => resolveGeneration({ class: 'retriever', seed: 1 }, m, noSeed));
    expect(retriever.message).toBe(
      'class "retriever" is not a class of this model (did you mean "golden retriever", "Labrador retriever" or "flat-coated retriever"?)',
    );
    const far = generationError(() => resolveGeneration({ class: 'zebra', seed: 1 }, m, noSeed));
    expect(far.message).toBe('class "zebra" is not a class of this model');
  });

  it('suggests in the order of closeness', () => {
    const m = withNames(['kitten', 'kittens', 'mitten']);
    const error = generationError(() => resolveGeneration({ class: 'kittenss', seed: 1 }, m, noSeed));
    expect(error.message).toBe('class "kittenss" is not a class of this model (did you mean "kittens" or "kitten"?)');
    // Equally close names keep the model's order.
    const cats = generationError(() => resolveGeneration({ class: 'caat', seed: 1 }, withNames(['cart', 'cab', 'cat']), noSeed));
    expect(cats.message).toBe('class "caat" is not a class of this model (did you mean "cart" or "cat"?)');
  });

  it('refuses a drawn seed that is not a uint32', () => {
    expect(() => resolveGeneration({ class: 0 }, manifest, () => 2 ** 32)).toThrow('drawSeed returned 4294967296');
  });
});

describe('image parameters', () => {
  it('wraps image seeds at 2^32', () => {
    expect(imageSeed(42, 3)).toBe(45);
    expect(imageSeed(4294967295, 1)).toBe(0);
    expect(imageSeed(4294967294, 7)).toBe(5);
  });

  it('records everything that made one image', () => {
    const resolved = resolveGeneration({ class: 'dog', seed: 4294967295, num_images: 2, steps: 3 }, manifest, noSeed);
    const parameters = imageParameters(resolved, manifest, 1, false);
    expect(parameters).toEqual({
      model: 'toy',
      model_weights_sha256: 'ab'.repeat(32),
      class_label: 1,
      class_name: 'dog',
      seed: 4294967295,
      image_seed: 0,
      image_index: 1,
      num_images: 2,
      cfg_scale: 4,
      noise_shift: 1,
      steps: [3, 3, 3, 3],
      solver: 'euler',
      resolution: 256,
      external_noise: false,
    });
    expect(ImageParameters.parse(parameters)).toEqual(parameters);
  });
});
