import { z } from 'zod';
import { formatIssues } from './issues.ts';

// The schema of pixelflow.json, the descriptor that `pixelflow convert` writes
// next to model.onnx. Everything that loads a model (worker, sampler, tests)
// reads the model's shape and sampling defaults from here, never from guesses.
// Objects are strict so that a typo in a hand-edited file fails loudly.

const positiveInt = z.int().positive();
const nonNegativeInt = z.int().nonnegative();

/** A bare file name inside the model folder: no directories, no way out of it. */
const FileInModelDir = z
  .string()
  .min(1)
  .refine((name) => !/[/\\]/.test(name) && !name.includes('..'), {
    message: 'must be a file name inside the model folder (no "/", "\\" or "..")',
  });

const ManifestArchitecture = z.strictObject({
  in_channels: positiveInt,
  out_channels: positiveInt,
  patch_size: positiveInt,
  num_attention_heads: positiveInt,
  // 2D RoPE splits each head into two halves of rotated pairs: head_dim / 4 frequencies per axis.
  attention_head_dim: positiveInt.refine((d) => d % 4 === 0, { message: 'must be a multiple of 4 (2D RoPE)' }),
  hidden_size: positiveInt,
  depth: positiveInt,
  num_classes: positiveInt,
  parameters: positiveInt,
});

const ManifestScheduler = z.strictObject({
  num_train_timesteps: positiveInt,
  num_stages: positiveInt,
  gamma: z.number(),
  block_noise_eps: z.number().nonnegative(),
  /** w_k of the CFG ramp g_k = 1 + (g - 1) w_k, one per stage. */
  cfg_stage_weights: z.array(z.number().min(0).max(1)),
});

const ManifestStage = z.strictObject({
  index: nonNegativeInt,
  resolution: positiveInt,
  start_t: z.number(),
  end_t: z.number(),
  timestep_first: z.number(),
  timestep_last: z.number(),
  /** x <- alpha * upsample(x) + beta * block_noise at the start of every stage but the first. */
  renoise: z.strictObject({ alpha: z.number(), beta: z.number() }).nullable(),
});

const ManifestClasses = z.strictObject({
  names: z.array(z.string()),
  /** The label that means "no class" (unconditional branch of CFG). */
  null_label: nonNegativeInt,
});

export const ManifestDefaults = z.strictObject({
  solver: z.enum(['euler', 'dopri5']),
  cfg_scale: z.number().min(1).max(25),
  noise_shift: z.number().min(1).max(100),
  steps: z.array(z.int().min(1).max(100)),
  num_images: z.int().min(1).max(8),
  class_label: nonNegativeInt,
});

const ManifestOnnx = z.strictObject({
  opset: z.int().min(17),
  inputs: z.strictObject({ x: z.string().min(1), timestep: z.string().min(1), class_labels: z.string().min(1) }),
  outputs: z.strictObject({ velocity: z.string().min(1) }),
  /**
   * How the graph computes attention: absent or 'plain' (MatMul, Softmax, MatMul: any runtime), or
   * 'multihead' (onnxruntime's fused com.microsoft.MultiHeadAttention).
   */
  attention: z.enum(['plain', 'multihead']).optional(),
});

const ManifestSource = z.strictObject({
  weights_sha256: z.string().regex(/^[0-9a-f]{64}$/, { message: 'must be 64 lowercase hex characters' }),
  converter: z.string().min(1),
  torch_version: z.string().min(1),
});

export const ModelManifest = z
  .strictObject({
    format: z.literal('pixelflow-onnx'),
    format_version: z.literal(1),
    name: z.string().min(1),
    model_file: FileInModelDir,
    /** Set when the weights live outside the .onnx file (models over 2 GB). */
    external_data_file: FileInModelDir.nullable(),
    /** Precision of the weights inside the ONNX file; inputs and outputs are float32 either way. */
    dtype: z.enum(['fp32', 'fp16']),
    /** Side of the final square image, in pixels. */
    resolution: positiveInt,
    architecture: ManifestArchitecture,
    scheduler: ManifestScheduler,
    stages: z.array(ManifestStage).min(1),
    classes: ManifestClasses,
    defaults: ManifestDefaults,
    dopri5: z.strictObject({ rtol: z.number().positive(), atol: z.number().positive() }),
    onnx: ManifestOnnx,
    source: ManifestSource,
  })
  // Invariants between fields; each issue points at the field a reader should fix.
  .superRefine((m, ctx) => {
    const issue = (path: (string | number)[], message: string): void => {
      ctx.addIssue({ code: 'custom', path, message });
    };
    const { architecture: arch, scheduler, stages, classes, defaults } = m;
    const numStages = scheduler.num_stages;

    if (stages.length !== numStages) {
      issue(['stages'], `has ${stages.length} entries but scheduler.num_stages is ${numStages}`);
    }
    if (scheduler.cfg_stage_weights.length !== numStages) {
      issue(
        ['scheduler', 'cfg_stage_weights'],
        `has ${scheduler.cfg_stage_weights.length} entries but scheduler.num_stages is ${numStages}`,
      );
    }
    if (defaults.steps.length !== numStages) {
      issue(['defaults', 'steps'], `has ${defaults.steps.length} entries but scheduler.num_stages is ${numStages}`);
    }

    stages.forEach((stage, k) => {
      if (stage.index !== k) issue(['stages', k, 'index'], `must be ${k} (stages are listed in order)`);
      if (stage.resolution % arch.patch_size !== 0) {
        issue(['stages', k, 'resolution'], `${stage.resolution} is not divisible by patch_size ${arch.patch_size}`);
      }
      const previous = stages[k - 1];
      if (previous && stage.resolution !== 2 * previous.resolution) {
        issue(['stages', k, 'resolution'], `must be twice stage ${k - 1}'s (${2 * previous.resolution})`);
      }
      if (k === 0 && stage.renoise !== null) issue(['stages', 0, 'renoise'], 'must be null for the first stage');
      if (k > 0 && stage.renoise === null) issue(['stages', k, 'renoise'], 'must be set for every stage after the first');
      if (stage.end_t <= stage.start_t) issue(['stages', k, 'end_t'], 'must be greater than start_t');
      if (stage.timestep_last < stage.timestep_first) {
        issue(['stages', k, 'timestep_last'], 'must not be less than timestep_first');
      }
    });
    const last = stages.at(-1);
    if (last && last.resolution !== m.resolution) {
      issue(['stages', stages.length - 1, 'resolution'], `the last stage must be at resolution ${m.resolution}`);
    }

    if (arch.hidden_size !== arch.num_attention_heads * arch.attention_head_dim) {
      issue(
        ['architecture', 'hidden_size'],
        `must equal num_attention_heads * attention_head_dim (${arch.num_attention_heads * arch.attention_head_dim})`,
      );
    }
    if (classes.names.length !== arch.num_classes) {
      issue(['classes', 'names'], `has ${classes.names.length} names but architecture.num_classes is ${arch.num_classes}`);
    }
    if (classes.null_label !== arch.num_classes) {
      issue(['classes', 'null_label'], `must equal architecture.num_classes (${arch.num_classes})`);
    }
    if (defaults.class_label >= arch.num_classes) {
      issue(['defaults', 'class_label'], `must be less than architecture.num_classes (${arch.num_classes})`);
    }
  });

export type ModelManifest = z.infer<typeof ModelManifest>;
export type ManifestDefaults = z.infer<typeof ManifestDefaults>;

/** A pixelflow.json that does not match the schema; the message is one line. */
export class ManifestError extends Error {
  override name = 'ManifestError';
  readonly source: string;
  readonly issues: readonly z.core.$ZodIssue[];

  constructor(source: string, issues: readonly z.core.$ZodIssue[]) {
    super(`${source}: invalid pixelflow.json: ${formatIssues(issues)}`);
    this.source = source;
    this.issues = issues;
  }
}

/**
 * Validates parsed JSON as a model manifest.
 * @param source where the JSON came from (a file path), named in the error message
 * @throws ManifestError naming the file and every failing field path, on one line
 */
export function parseModelManifest(json: unknown, source: string): ModelManifest {
  const result = ModelManifest.safeParse(json);
  if (!result.success) throw new ManifestError(source, result.error.issues);
  return result.data;
}
