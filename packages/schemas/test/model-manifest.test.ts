import { describe, expect, it } from 'vitest';
import { ManifestError, parseModelManifest } from '../src/index.ts';
import { exampleManifest as validManifest } from '../src/testing.ts';

// Mutations reach into the document freely, writing wrong types on purpose.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Draft = any;

/** Parses a mutated copy of the valid manifest and returns the error message. */
function errorFor(mutate: (m: Draft) => void): string {
  const manifest = structuredClone(validManifest()) as Draft;
  mutate(manifest);
  try {
    parseModelManifest(manifest, '/models/toy/pixelflow.json');
  } catch (error) {
    expect(error).toBeInstanceOf(ManifestError);
    const message = (error as Error).message;
    expect(message).not.toContain('\n');
    expect(message.startsWith('/models/toy/pixelflow.json: ')).toBe(true);
    return message;
  }
  throw new Error('expected parseModelManifest to throw');
}

describe('parseModelManifest', () => {
  it('accepts a valid manifest and returns it unchanged', () => {
    const manifest = validManifest();
    expect(parseModelManifest(structuredClone(manifest), 'x.json')).toEqual(manifest);
  });

  it('accepts external weights and fp16', () => {
    const parsed = parseModelManifest(
      { ...validManifest(), dtype: 'fp16', external_data_file: 'model.onnx.data' },
      'x.json',
    );
    expect(parsed.external_data_file).toBe('model.onnx.data');
    expect(parsed.dtype).toBe('fp16');
  });

  it('rejects input that is not an object', () => {
    expect(() => parseModelManifest([], 'x.json')).toThrow(/^x\.json: invalid pixelflow\.json: \(root\): /);
  });

  it('rejects unknown keys at every level, so typos fail', () => {
    expect(errorFor((m) => (m.resolutoin = 256))).toMatch(/\(root\): Unrecognized key: "resolutoin"/);
    expect(errorFor((m) => (m.defaults.cfg = 2))).toMatch(/defaults: Unrecognized key: "cfg"/);
    expect(errorFor((m) => (m.stages[1].renoise.gamma = 1))).toMatch(/stages\[1\]\.renoise: Unrecognized key/);
  });

  it('names every failing field path in one message', () => {
    const message = errorFor((m) => {
      m.format_version = 2;
      delete m.name;
      m.dtype = 'bf16';
      m.source.weights_sha256 = 'xyz';
    });
    for (const path of ['format_version', 'name', 'dtype', 'source.weights_sha256']) {
      expect(message).toContain(`${path}: `);
    }
  });

  it.each([
    ['sub/model.onnx'],
    ['..'],
    ['..\\model.onnx'],
    [''],
  ])('rejects model_file %j that leaves the model folder', (name) => {
    expect(errorFor((m) => (m.model_file = name))).toContain('model_file: ');
  });

  it.each<[string, (m: Draft) => void, string]>([
    ['attention_head_dim not a multiple of 4', (m) => (m.architecture.attention_head_dim = 6), 'architecture.attention_head_dim'],
    ['non-integer depth', (m) => (m.architecture.depth = 1.5), 'architecture.depth'],
    ['cfg weight above 1', (m) => (m.scheduler.cfg_stage_weights[3] = 1.5), 'scheduler.cfg_stage_weights[3]'],
    ['cfg_scale above 25', (m) => (m.defaults.cfg_scale = 30), 'defaults.cfg_scale'],
    ['noise_shift below 1', (m) => (m.defaults.noise_shift = 0.5), 'defaults.noise_shift'],
    ['101 steps', (m) => (m.defaults.steps[0] = 101), 'defaults.steps[0]'],
    ['9 images', (m) => (m.defaults.num_images = 9), 'defaults.num_images'],
    ['unknown solver', (m) => (m.defaults.solver = 'heun'), 'defaults.solver'],
    ['opset 16', (m) => (m.onnx.opset = 16), 'onnx.opset'],
    ['negative block noise eps', (m) => (m.scheduler.block_noise_eps = -1), 'scheduler.block_noise_eps'],
    ['non-positive rtol', (m) => (m.dopri5.rtol = 0), 'dopri5.rtol'],
  ])('rejects %s', (_title, mutate, path) => {
    expect(errorFor(mutate)).toContain(`${path}: `);
  });

  describe('cross-field checks', () => {
    it.each<[string, (m: Draft) => void, string]>([
      ['a missing stage', (m) => m.stages.pop(), 'stages: has 3 entries but scheduler.num_stages is 4'],
      ['a short cfg ramp', (m) => m.scheduler.cfg_stage_weights.pop(), 'scheduler.cfg_stage_weights: has 3 entries'],
      ['a short steps list', (m) => m.defaults.steps.pop(), 'defaults.steps: has 3 entries'],
      ['stages out of order', (m) => (m.stages[2].index = 3), 'stages[2].index: must be 2'],
      ['a last stage below the resolution', (m) => (m.resolution = 512), 'stages[3].resolution: the last stage must be at resolution 512'],
      [
        'a stage that does not double',
        (m) => {
          m.stages[1].resolution = 96;
        },
        'stages[1].resolution: must be twice stage 0',
      ],
      ['renoise on the first stage', (m) => (m.stages[0].renoise = { alpha: 1, beta: 0 }), 'stages[0].renoise: must be null'],
      ['no renoise on a later stage', (m) => (m.stages[2].renoise = null), 'stages[2].renoise: must be set'],
      ['a resolution not divisible by the patch', (m) => (m.architecture.patch_size = 3), 'stages[0].resolution: 32 is not divisible by patch_size 3'],
      ['too few class names', (m) => m.classes.names.pop(), 'classes.names: has 2 names but architecture.num_classes is 3'],
      ['a wrong null label', (m) => (m.classes.null_label = 0), 'classes.null_label: must equal architecture.num_classes (3)'],
      ['hidden_size != heads * head_dim', (m) => (m.architecture.hidden_size = 32), 'architecture.hidden_size: must equal'],
      ['a default class out of range', (m) => (m.defaults.class_label = 3), 'defaults.class_label: must be less than'],
      ['an empty stage window', (m) => (m.stages[1].end_t = 0.1), 'stages[1].end_t: must be greater than start_t'],
    ])('rejects %s', (_title, mutate, expected) => {
      expect(errorFor(mutate)).toContain(expected);
    });
  });

  it('caps a long list of issues so the line stays readable', () => {
    const message = errorFor((m) => {
      m.classes.names = m.classes.names.map(() => 7);
      m.defaults.steps = m.defaults.steps.map(() => 0);
      m.scheduler.cfg_stage_weights = m.scheduler.cfg_stage_weights.map(() => 2);
    });
    expect(message).toMatch(/; and \d+ more$/);
  });
});
