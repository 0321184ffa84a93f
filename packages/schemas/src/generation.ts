import { z } from 'zod';
import { formatIssuePath } from './issues.ts';
import type { ModelManifest } from './model-manifest.ts';

// What a user asks for when generating images (the CLI's flags now, the body of
// `POST /jobs` later), and the fully resolved parameters the sampler runs with.
// A request leaves out whatever it likes; resolveGeneration fills the gaps from
// the model's pixelflow.json and checks what only the model can check (class
// names, stage count). Ranges are PIXELFLOW.md §6's demo controls.

/**
 * Each field's rule, stated once: it is the error message for every way the
 * field can be wrong, so a user reads the rule rather than zod's internals.
 */
const RULES = {
  class: 'must be a class index (an integer >= 0) or a class name',
  num_images: 'must be an integer from 1 to 8',
  seed: 'must be an integer from 0 to 4294967295',
  cfg_scale: 'must be a number from 1 to 25',
  noise_shift: 'must be a number from 1 to 100',
  steps: 'must be an integer from 1 to 100, or a list of them (one per stage)',
  step: 'must be an integer from 1 to 100',
  solver: 'must be "euler" or "dopri5"',
} as const;

export const MAX_SEED = 0xffff_ffff;

const ClassLabel = z.int({ error: RULES.class }).min(0);
const ClassName = z.string({ error: RULES.class }).min(1);
const NumImages = z.int({ error: RULES.num_images }).min(1).max(8);
const Seed = z.int({ error: RULES.seed }).min(0).max(MAX_SEED);
const CfgScale = z.number({ error: RULES.cfg_scale }).min(1).max(25);
const NoiseShift = z.number({ error: RULES.noise_shift }).min(1).max(100);
const StageSteps = z.int({ error: RULES.step }).min(1).max(100);
const Solver = z.enum(['euler', 'dopri5'], { error: RULES.solver });

export const GenerationRequest = z
  .strictObject({
    class: z.union([ClassLabel, ClassName], { error: RULES.class }).meta({
      description: 'A class index (0 .. number of classes - 1) or a class name of the model',
    }),
    num_images: NumImages.optional().meta({ description: 'Images to generate; the model default when absent' }),
    seed: Seed.optional().meta({
      description: 'Seed of image 0; image i uses (seed + i) mod 2^32. Drawn at random when absent',
    }),
    cfg_scale: CfgScale.optional().meta({ description: 'Classifier-free guidance scale at the last stage' }),
    noise_shift: NoiseShift.optional().meta({ description: 'Shift of the within-stage time grid (Euler only)' }),
    steps: z
      .union([StageSteps, z.array(StageSteps)], { error: RULES.steps })
      .optional()
      .meta({ description: 'Euler steps per stage: one number for every stage, or one per stage' }),
    solver: Solver.optional().meta({ description: 'euler (fixed steps) or dopri5 (adaptive)' }),
  })
  .meta({ description: 'The parameters of one generation: a class and, optionally, how to sample it' });

export type GenerationRequest = z.infer<typeof GenerationRequest>;

/** Every parameter the sampler runs with, nothing left to defaults. Stored with jobs and in PNGs. */
export const ResolvedGeneration = z
  .strictObject({
    class_label: ClassLabel,
    class_name: z.string(),
    num_images: NumImages,
    seed: Seed,
    cfg_scale: CfgScale,
    noise_shift: NoiseShift,
    /** One entry per stage. */
    steps: z.array(StageSteps).min(1),
    solver: Solver,
  })
  .meta({ description: 'Every parameter a generation runs with, the defaults filled in' });

export type ResolvedGeneration = z.infer<typeof ResolvedGeneration>;

/**
 * The `parameters` text embedded in every generated PNG: enough to know what
 * made the image and to make it again (same model, same numbers). No
 * timestamps or hosts, so the same request gives byte-identical files.
 */
export const ImageParameters = z.strictObject({
  model: z.string().min(1),
  model_weights_sha256: z.string(),
  class_label: ClassLabel,
  class_name: z.string(),
  /** The request's seed (image 0's). */
  seed: Seed,
  /** This image's seed, (seed + image_index) mod 2^32. */
  image_seed: Seed,
  image_index: z.int().min(0),
  num_images: NumImages,
  cfg_scale: CfgScale,
  noise_shift: NoiseShift,
  steps: z.array(StageSteps).min(1),
  solver: Solver,
  /** Side of the square image, in pixels. */
  resolution: z.int().positive(),
  /** The initial and re-noising noise came from files rather than from the seed. */
  external_noise: z.boolean(),
});

export type ImageParameters = z.infer<typeof ImageParameters>;

/** Image i's seed: consecutive seeds, wrapping at 2^32. */
export function imageSeed(seed: number, index: number): number {
  return (seed + index) % (MAX_SEED + 1);
}

export function imageParameters(
  generation: ResolvedGeneration,
  manifest: Pick<ModelManifest, 'name' | 'resolution' | 'source'>,
  index: number,
  externalNoise: boolean,
): ImageParameters {
  return {
    model: manifest.name,
    model_weights_sha256: manifest.source.weights_sha256,
    class_label: generation.class_label,
    class_name: generation.class_name,
    seed: generation.seed,
    image_seed: imageSeed(generation.seed, index),
    image_index: index,
    num_images: generation.num_images,
    cfg_scale: generation.cfg_scale,
    noise_shift: generation.noise_shift,
    steps: [...generation.steps],
    solver: generation.solver,
    resolution: manifest.resolution,
    external_noise: externalNoise,
  };
}

/**
 * A request the model cannot serve. `field` is the request field at fault
 * (e.g. `['steps']`, `['steps', 2]`); `reason` says what is wrong without
 * naming it, so a CLI can put its flag name in front; `message` is
 * `<field> <reason>`, one line.
 */
export class GenerationError extends Error {
  override name = 'GenerationError';
  readonly field: readonly (string | number)[];
  readonly reason: string;

  constructor(field: readonly (string | number)[], reason: string) {
    super(`${formatIssuePath(field)} ${reason}`);
    this.field = field;
    this.reason = reason;
  }
}

function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/**
 * Validates untrusted input (a JSON body, flags turned into an object).
 * @throws GenerationError for the first problem, naming the field and the value given
 */
export function parseGenerationRequest(input: unknown): GenerationRequest {
  const result = GenerationRequest.safeParse(input);
  if (result.success) return result.data;
  const first = result.error.issues[0];
  const issue = first && innermostIssue(first);
  if (!issue) throw new GenerationError([], 'is not a valid generation request');
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    throw new GenerationError([...issue.path, key].map(pathKey), 'is not a generation parameter');
  }
  const path = issue.path.map(pathKey);
  if (path.length === 0) throw new GenerationError([], `must be an object, not ${describeValue(input)}`);
  throw new GenerationError(path, `${issue.message}, not ${describeValue(valueAt(input, issue.path))}`);
}

/**
 * For a union (steps: a number or a list), the issue of the alternative the
 * value had the shape of: `[10, 2.5]` is a list with a bad entry at [1], not
 * "neither a number nor a list".
 */
function innermostIssue(issue: z.core.$ZodIssue): z.core.$ZodIssue {
  if (issue.code !== 'invalid_union') return issue;
  const shaped = issue.errors.filter((branch) => branch.some((i) => i.code !== 'invalid_type' || i.path.length > 0));
  const inner = shaped.length === 1 ? shaped[0]?.[0] : undefined;
  if (!inner) return issue;
  return innermostIssue({ ...inner, path: [...issue.path, ...inner.path] } as z.core.$ZodIssue);
}

function pathKey(key: PropertyKey): string | number {
  return typeof key === 'number' ? key : String(key);
}

/**
 * Edit distance counting a swap of neighbours as one edit ("dgo" -> "dog"), the
 * commonest typo. Class names are short, so the table is cheap even for 1000 classes.
 */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number): number => rows[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i++) {
    const row = rows[i] ?? [];
    for (let j = 1; j <= b.length; j++) {
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      row[j] = best;
    }
  }
  return at(a.length, b.length);
}

const MAX_SUGGESTIONS = 3;

/** Up to three names close to `wanted`: small edit distance, or containing it as a whole word. */
function closeNames(wanted: string, names: readonly string[]): string[] {
  const query = normalizeName(wanted);
  const tolerance = Math.max(1, Math.floor(query.length / 3));
  const wordPattern = new RegExp(`(^|[^\\p{L}\\p{N}])${query.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}($|[^\\p{L}\\p{N}])`, 'u');
  const scored: { name: string; score: number; index: number }[] = [];
  names.forEach((name, index) => {
    const candidate = normalizeName(name);
    const distance = editDistance(query, candidate);
    if (distance <= tolerance) scored.push({ name, score: distance, index });
    else if (query.length >= 3 && wordPattern.test(candidate)) scored.push({ name, score: tolerance + 1, index });
  });
  scored.sort((a, b) => a.score - b.score || a.index - b.index);
  return [...new Set(scored.map((s) => s.name))].slice(0, MAX_SUGGESTIONS);
}

function normalizeName(name: string): string {
  return name.trim().replace(/\s+/g, ' ').toLowerCase();
}

function quoteList(items: readonly string[], last: string): string {
  const quoted = items.map((item) => JSON.stringify(item));
  if (quoted.length <= 1) return quoted.join('');
  return `${quoted.slice(0, -1).join(', ')} ${last} ${quoted.at(-1) ?? ''}`;
}

function resolveClass(wanted: number | string, classes: ModelManifest['classes']): { label: number; name: string } {
  const { names } = classes;
  if (typeof wanted === 'number') {
    const name = names[wanted];
    if (name === undefined) {
      const nullNote = wanted === classes.null_label ? ` (${wanted} is the null label, the unconditional branch)` : '';
      throw new GenerationError(['class'], `${wanted} is out of range 0..${names.length - 1}${nullNote}`);
    }
    return { label: wanted, name };
  }

  // Exact first, so that a model with both "Crane" and "crane" can reach each;
  // then ignoring case and spacing, which is what people type.
  const exact = names.flatMap((name, label) => (name === wanted ? [label] : []));
  const matches = exact.length > 0 ? exact : names.flatMap((name, label) => (normalizeName(name) === normalizeName(wanted) ? [label] : []));
  const [label, ...others] = matches;
  if (label === undefined) {
    const suggestions = closeNames(wanted, names);
    const hint = suggestions.length > 0 ? ` (did you mean ${quoteList(suggestions, 'or')}?)` : '';
    throw new GenerationError(['class'], `${JSON.stringify(wanted)} is not a class of this model${hint}`);
  }
  if (others.length > 0) {
    // ImageNet itself has two "crane"s (the bird and the machine) and two "maillot"s.
    const candidates = matches.map((i) => `${i} ${JSON.stringify(names[i])}`).join(', ');
    throw new GenerationError(['class'], `${JSON.stringify(wanted)} matches several classes: ${candidates}; give the class index`);
  }
  return { label, name: names[label] ?? wanted };
}

/**
 * Fills every parameter a request leaves out from the model's defaults and
 * checks what depends on the model.
 * @param drawSeed called only when the request has no seed; must return a uint32
 * @throws GenerationError for an unknown class, an out-of-range index, or a steps list of the wrong length
 */
export function resolveGeneration(
  request: GenerationRequest,
  manifest: Pick<ModelManifest, 'classes' | 'defaults' | 'stages'>,
  drawSeed: () => number,
): ResolvedGeneration {
  const { defaults } = manifest;
  const stageCount = manifest.stages.length;
  const { label, name } = resolveClass(request.class, manifest.classes);

  const requested = request.steps ?? defaults.steps;
  const steps = typeof requested === 'number' ? new Array<number>(stageCount).fill(requested) : [...requested];
  if (steps.length !== stageCount) {
    const entries = `${steps.length} ${steps.length === 1 ? 'entry' : 'entries'}`;
    throw new GenerationError(['steps'], `has ${entries} but the model has ${stageCount} stages`);
  }

  let seed = request.seed;
  if (seed === undefined) {
    seed = drawSeed();
    if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) throw new Error(`drawSeed returned ${seed}, not a uint32`);
  }

  return {
    class_label: label,
    class_name: name,
    num_images: request.num_images ?? defaults.num_images,
    seed,
    cfg_scale: request.cfg_scale ?? defaults.cfg_scale,
    noise_shift: request.noise_shift ?? defaults.noise_shift,
    steps,
    solver: request.solver ?? defaults.solver,
  };
}
