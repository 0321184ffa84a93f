import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readNpyAs, type ModelDir } from '@pixelflow/formats';
import { Tensor, type InferenceSession } from 'onnxruntime-node';
import { z } from 'zod';

// The golden forward passes of the committed tiny model (pytorch/pixelflow/golden.py), and how to
// run one through an onnxruntime session. Shared by every test that checks an ONNX file against them.

export const TINY_MODEL_DIR = fileURLToPath(new URL('../fixtures/tiny/', import.meta.url));
export const TINY_CHECKPOINT_DIR = fileURLToPath(new URL('../fixtures/tiny-checkpoint/', import.meta.url));
export const FORWARD_DIR = join(TINY_MODEL_DIR, 'golden', 'forward');

export const ForwardCase = z.strictObject({
  name: z.string().regex(/^[\w.-]+$/),
  stage: z.int().nonnegative(),
  batch: z.int().positive(),
  height: z.int().positive(),
  width: z.int().positive(),
});
export type ForwardCase = z.infer<typeof ForwardCase>;

export async function forwardCases(): Promise<ForwardCase[]> {
  return z.array(ForwardCase).min(1).parse(JSON.parse(await readFile(join(FORWARD_DIR, 'index.json'), 'utf8')));
}

/** Largest |a - b| and where it is; a NaN anywhere counts as infinitely wrong. */
export function maxAbsDiff(actual: ArrayLike<number>, expected: ArrayLike<number>): { value: number; index: number } {
  let worst = { value: 0, index: -1 };
  for (let i = 0; i < expected.length; i++) {
    const diff = Math.abs((actual[i] ?? Number.NaN) - (expected[i] ?? Number.NaN));
    if (Number.isNaN(diff) || diff > worst.value) worst = { value: Number.isNaN(diff) ? Infinity : diff, index: i };
  }
  return worst;
}

export interface ForwardRun {
  expected: { shape: number[]; data: Float32Array };
  inputs: { x: number[]; timestep: number[]; classLabels: number[] };
  output: { type: string; dims: readonly number[]; data: Float32Array } | undefined;
}

/** Feeds one golden case to `session` under the input and output names `model`'s manifest gives. */
export async function runForwardCase(session: InferenceSession, model: ModelDir, c: ForwardCase): Promise<ForwardRun> {
  const { onnx } = model.manifest;
  const file = (tensor: string) => join(FORWARD_DIR, `${c.name}.${tensor}.npy`);
  const [x, timestep, classLabels, velocity] = await Promise.all([
    readNpyAs(file('x'), '<f4'),
    readNpyAs(file('timestep'), '<f4'),
    readNpyAs(file('class_labels'), '<i8'),
    readNpyAs(file('velocity'), '<f4'),
  ]);
  const results = await session.run({
    [onnx.inputs.x]: new Tensor('float32', x.data, x.shape),
    [onnx.inputs.timestep]: new Tensor('float32', timestep.data, timestep.shape),
    [onnx.inputs.class_labels]: new Tensor('int64', classLabels.data, classLabels.shape),
  });
  const output = results[onnx.outputs.velocity];
  return {
    expected: velocity,
    inputs: { x: x.shape, timestep: timestep.shape, classLabels: classLabels.shape },
    output: output && { type: output.type, dims: output.dims, data: output.data as Float32Array },
  };
}
