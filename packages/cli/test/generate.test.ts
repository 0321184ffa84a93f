import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readNpyAs, readPngChunks, readPngText, writeNpy } from '@pixelflow/formats';
import { ImageParameters } from '@pixelflow/schemas';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../src/repo.ts';
import { interruptMidSampling, MAIN, pixelflow, type Result } from './support/run-cli.ts';

// `pixelflow generate` as users run it: a real child process on the committed tiny model
// (random weights, 4 stages 4 -> 32 px, 3 channels, 10 classes named "class 0".."class 9"),
// real onnxruntime, real files. `--threads 1` keeps concurrent runs from fighting over 2 cores.

const TINY = join(repoRoot, 'test/fixtures/tiny');
const GOLDEN_RUNS = join(TINY, 'golden/runs');
const SIDE = 32;

/** Runs generate on the tiny model and expects success. */
async function generate(out: string, ...args: string[]): Promise<Result> {
  const result = await pixelflow(['generate', '--model', TINY, '--threads', '1', '--out', out, ...args]);
  expect(result.stderr, 'stderr of a run expected to succeed').not.toMatch(/error/i);
  expect(result.code).toBe(0);
  return result;
}

function decode(png: Buffer): { width: number; height: number; rgb: Uint8Array } {
  const { width, height, data } = PNG.sync.read(png, { checkCRC: true });
  const rgb = new Uint8Array(width * height * 3);
  for (let p = 0; p < width * height; p++) {
    rgb.set(data.subarray(p * 4, p * 4 + 3), p * 3);
    expect(data[p * 4 + 3]).toBe(255);
  }
  return { width, height, rgb };
}

function parameters(png: Buffer): ImageParameters {
  return ImageParameters.parse(JSON.parse(readPngText(png)['parameters'] ?? 'null'));
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The compressed pixels of a PNG: equal when the images are, whatever the text chunks say. */
function idat(png: Buffer): Buffer {
  return Buffer.concat(readPngChunks(png).filter((c) => c.type === 'IDAT').map((c) => c.data));
}

/** What the sampler's last stage gives as pixels: round(255 clamp(x / 2 + 0.5, 0, 1)), NCHW -> HWC. */
function pixelsOf(state: Float32Array, image: number, side: number): Uint8Array {
  const plane = side * side;
  const out = new Uint8Array(plane * 3);
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < plane; p++) {
      const x = state[(image * 3 + c) * plane + p] ?? Number.NaN;
      out[p * 3 + c] = Math.round(255 * Math.min(1, Math.max(0, x / 2 + 0.5)));
    }
  }
  return out;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs((a[i] ?? Number.NaN) - (b[i] ?? Number.NaN)) || 0);
  return worst;
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pixelflow-generate-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

// Independent runs in their own folders: side by side, two cores, one onnxruntime thread each.
describe.concurrent('pixelflow generate', () => {
  it('writes PNGs that decode at 32x32 and carry every parameter', async () => {
    const out = join(dir, 'basic', 'nested');
    const result = await generate(out, '--count', '2', '--seed', '42', '--steps', '2', '--class', '3', '--cfg', '2.5', '--shift', '2');
    const names = ['pixelflow-42-00.png', 'pixelflow-42-01.png'];
    expect((await readdir(out)).sort()).toEqual(names);
    expect(result.stdout).toBe(names.map((name) => `${join(out, name)}\n`).join(''));

    const pngs = await Promise.all(names.map((name) => readFile(join(out, name))));
    const images = pngs.map(decode);
    for (const image of images) expect([image.width, image.height]).toEqual([SIDE, SIDE]);
    // Random weights make noise-like images, but not flat ones, and not two equal ones.
    expect(new Set(images[0]?.rgb).size).toBeGreaterThan(16);
    expect(Buffer.from(images[0]?.rgb ?? []).equals(Buffer.from(images[1]?.rgb ?? []))).toBe(false);

    const manifest = JSON.parse(await readFile(join(TINY, 'pixelflow.json'), 'utf8')) as {
      source: { weights_sha256: string };
    };
    pngs.forEach((png, i) => {
      expect(readPngText(png)['Software']).toBe('pixelflow-serve');
      expect(parameters(png)).toEqual({
        model: 'tiny-random',
        model_weights_sha256: manifest.source.weights_sha256,
        class_label: 3,
        class_name: 'class 3',
        seed: 42,
        image_seed: 42 + i,
        image_index: i,
        num_images: 2,
        cfg_scale: 2.5,
        noise_shift: 2,
        steps: [2, 2, 2, 2],
        solver: 'euler',
        resolution: SIDE,
        external_noise: false,
      });
    });

    // Not a terminal: plain lines, one per stage and a last one.
    const lines = result.stderr.trimEnd().split('\n');
    expect(lines[0]).toBe('pixelflow generate: class 3 "class 3", 2 images, seed 42, euler, steps 2,2,2,2, shift 2, cfg 2.5');
    expect(lines.slice(1, 5)).toEqual([
      expect.stringMatching(/^stage 1\/4 4px done: 2 steps, \S+ elapsed$/),
      expect.stringMatching(/^stage 2\/4 8px done: 2 steps, \S+ elapsed$/),
      expect.stringMatching(/^stage 3\/4 16px done: 2 steps, \S+ elapsed$/),
      expect.stringMatching(/^stage 4\/4 32px done: 2 steps, \S+ elapsed$/),
    ]);
    expect(lines[5]).toMatch(/^pixelflow generate: 2 images 32x32 in \S+ \(8 model calls on cpu; model loaded in \S+\)$/);
    expect(lines).toHaveLength(6);
    expect(result.stderr).not.toContain('\r');
  });

  it('gives byte-identical files for the same arguments, and other images for another seed', async () => {
    const args = ['--count', '2', '--seed', '4294967295', '--steps', '2,1,3,2'];
    await generate(join(dir, 'again-1'), ...args);
    await generate(join(dir, 'again-2'), ...args);
    await generate(join(dir, 'other-seed'), ...args.map((a) => (a === '4294967295' ? '7' : a)));
    for (const i of ['00', '01']) {
      const first = await readFile(join(dir, 'again-1', `pixelflow-4294967295-${i}.png`));
      const second = await readFile(join(dir, 'again-2', `pixelflow-4294967295-${i}.png`));
      expect(second.equals(first), `image ${i}`).toBe(true);
      const other = decode(await readFile(join(dir, 'other-seed', `pixelflow-7-${i}.png`)));
      expect(Buffer.from(other.rgb).equals(Buffer.from(decode(first).rgb)), `image ${i}`).toBe(false);
    }
    // Image seeds wrap at 2^32.
    expect(parameters(await readFile(join(dir, 'again-1', 'pixelflow-4294967295-01.png'))).image_seed).toBe(0);
  });

  it('refuses to replace PNGs already in --out unless --force, before loading the model', async () => {
    const out = join(dir, 'no-clobber');
    const args = ['--count', '2', '--seed', '11', '--steps', '1'];
    await generate(out, ...args);
    const before = await readFile(join(out, 'pixelflow-11-01.png'));
    await writeFile(join(out, 'pixelflow-11-00.png'), 'a file of the user');
    const refused = await pixelflow(['generate', '--model', TINY, '--threads', '1', '--out', out, ...args]);
    expect(refused.code).toBe(2);
    expect(refused.stdout).toBe('');
    expect(refused.stderr.trimEnd()).toBe(`pixelflow generate: ${join(out, 'pixelflow-11-00.png')} and 1 more already exist; pass --force to replace them (nothing written)`);
    expect(await readFile(join(out, 'pixelflow-11-00.png'), 'utf8')).toBe('a file of the user');
    expect((await readFile(join(out, 'pixelflow-11-01.png'))).equals(before)).toBe(true);
    await generate(out, ...args, '--force');
    expect((await readFile(join(out, 'pixelflow-11-00.png'))).subarray(1, 4).toString()).toBe('PNG');
    expect((await readdir(out)).sort()).toEqual(['pixelflow-11-00.png', 'pixelflow-11-01.png']);
  });

  it('reproduces the same images from the noise it dumped', async () => {
    const dump = join(dir, 'dump');
    const args = ['--count', '2', '--seed', '5', '--steps', '2', '--class', '1'];
    await generate(join(dir, 'dumped'), ...args, '--dump', dump);
    expect((await readdir(dump)).sort()).toEqual([
      'noise_block_1.npy',
      'noise_block_2.npy',
      'noise_block_3.npy',
      'noise_stage0.npy',
      'stage_0.npy',
      'stage_1.npy',
      'stage_2.npy',
      'stage_3.npy',
    ]);
    for (const [k, side] of [4, 8, 16, 32].entries()) {
      const noise = await readNpyAs(join(dump, k === 0 ? 'noise_stage0.npy' : `noise_block_${k}.npy`), '<f4');
      const state = await readNpyAs(join(dump, `stage_${k}.npy`), '<f4');
      expect(noise.shape).toEqual([2, 3, side, side]);
      expect(state.shape).toEqual([2, 3, side, side]);
    }
    // The last stage's state is the image before clamping and rounding.
    const last = await readNpyAs(join(dump, 'stage_3.npy'), '<f4');
    const dumpedPngs = await Promise.all(['00', '01'].map((i) => readFile(join(dir, 'dumped', `pixelflow-5-${i}.png`))));
    dumpedPngs.forEach((png, i) => expect(maxDiff(decode(png).rgb, pixelsOf(last.data, i, SIDE))).toBe(0));

    const result = await generate(join(dir, 'replayed'), ...args, '--noise', dump);
    expect(result.stderr).toContain('seed 5 (noise from --noise)');
    for (const [i, dumped] of dumpedPngs.entries()) {
      const replayed = await readFile(join(dir, 'replayed', `pixelflow-5-0${i}.png`));
      // Same pixels, compressed to the same bytes; the metadata says where the noise came from.
      expect(idat(replayed).equals(idat(dumped))).toBe(true);
      expect(parameters(replayed)).toEqual({ ...parameters(dumped), external_noise: true });
    }
  });

  it('reproduces the PyTorch reference sampler from the noise it was fed', async () => {
    // Run euler_cfg4_shift3_uneven sampled classes [0, 5, 9]; the CLI gives every image one class,
    // and each image's result depends only on its own noise and class, so image i of a run with
    // that image's class must match the reference's image i.
    const run = join(GOLDEN_RUNS, 'euler_cfg4_shift3_uneven');
    const params = JSON.parse(await readFile(join(run, 'params.json'), 'utf8')) as {
      class_labels: number[];
      steps: number[];
      cfg_scale: number;
      noise_shift: number;
      solver: string;
    };
    expect(params).toMatchObject({ class_labels: [0, 5, 9], solver: 'euler' });
    const golden = await readNpyAs(join(run, 'stage_3.npy'), '<f4');
    const goldenImages = await readNpyAs(join(run, 'image.npy'), '|u1');
    const pixels = SIDE * SIDE * 3;
    for (const image of [0, 2]) {
      const out = join(dir, `golden-${image}`);
      const dump = join(dir, `golden-${image}-dump`);
      const label = String(params.class_labels[image]);
      await generate(out, ...['--count', '3', '--class', label, '--noise', run, '--dump', dump, '--seed', '0'],
        ...['--steps', params.steps.join(','), '--cfg', String(params.cfg_scale), '--shift', String(params.noise_shift)]);
      const state = await readNpyAs(join(dump, 'stage_3.npy'), '<f4');
      const plane = 3 * SIDE * SIDE;
      const ours = state.data.subarray(image * plane, (image + 1) * plane);
      const theirs = golden.data.subarray(image * plane, (image + 1) * plane);
      expect(maxDiff(ours, theirs), `image ${image}: max |state - reference|`).toBeLessThan(1e-3);
      const png = decode(await readFile(join(out, `pixelflow-0-0${image}.png`)));
      expect(maxDiff(png.rgb, goldenImages.data.subarray(image * pixels, (image + 1) * pixels))).toBeLessThanOrEqual(1);
    }
  });

  it('draws and reports a seed when none is given, and prints only JSON with --json', async () => {
    const out = join(dir, 'json');
    const result = await generate(out, '--count', '1', '--steps', '1', '--class', 'CLASS 7', '--json');
    const summary = JSON.parse(result.stdout) as {
      files: { path: string; sha256: string; image_index: number; image_seed: number }[];
      parameters: { seed: number; class_label: number; class_name: string; num_images: number; steps: number[] };
      seed_drawn: boolean;
      external_noise: boolean;
      model: { name: string; dir: string; weights_sha256: string };
      provider: string;
      model_calls: number;
      elapsed_ms: number;
      model_call_ms: number;
      load_ms: number;
      write_ms: number;
      total_ms: number;
      resolution: number;
    };
    const { seed } = summary.parameters;
    expect(Number.isInteger(seed) && seed >= 0 && seed <= 4294967295).toBe(true);
    expect(summary.seed_drawn).toBe(true);
    expect(summary.parameters).toEqual({
      class_label: 7,
      class_name: 'class 7',
      num_images: 1,
      seed,
      cfg_scale: 4,
      noise_shift: 1,
      steps: [1, 1, 1, 1],
      solver: 'euler',
    });
    const path = join(out, `pixelflow-${seed}-00.png`);
    expect(summary.files).toEqual([{ path, sha256: sha256(await readFile(path)), image_index: 0, image_seed: seed }]);
    expect(summary).toMatchObject({ external_noise: false, provider: 'cpu', model_calls: 4, resolution: SIDE });
    expect(summary.model).toMatchObject({ name: 'tiny-random', dir: TINY });
    expect(summary.elapsed_ms).toBeGreaterThan(0);
    // The timings add up: model calls happen inside sampling, and the parts inside the whole.
    expect(summary.model_call_ms).toBeGreaterThanOrEqual(0);
    expect(summary.model_call_ms).toBeLessThanOrEqual(summary.elapsed_ms);
    expect(summary.load_ms + summary.elapsed_ms + summary.write_ms).toBeLessThanOrEqual(summary.total_ms + 3);
    expect(result.stderr).toContain(`seed ${seed} (random)`);
    expect(parameters(await readFile(path)).seed).toBe(seed);
  });

  it('saves the CPU session on its first run and loads it after, with the same images; PIXELFLOW_SESSION_CACHE=off turns it off', async () => {
    const cache = join(dir, 'session-cache');
    const run = async (name: string, cacheSetting: string) => {
      const out = join(dir, name);
      const result = await pixelflow(['generate', '--model', TINY, '--threads', '1', '--out', out, '--count', '1', '--steps', '1', '--seed', '5', '--json'], {
        ...process.env,
        PIXELFLOW_SESSION_CACHE: cacheSetting,
      });
      expect(result.code, result.stderr).toBe(0);
      return JSON.parse(result.stdout) as { session_cache: string; files: { sha256: string }[] };
    };
    const first = await run('cache-1', cache);
    const second = await run('cache-2', cache);
    const off = await run('cache-off', 'off');
    expect([first.session_cache, second.session_cache, off.session_cache]).toEqual(['saved', 'loaded', 'off']);
    expect(off.files.map((f) => f.sha256)).toEqual(first.files.map((f) => f.sha256));
    expect(second.files.map((f) => f.sha256)).toEqual(first.files.map((f) => f.sha256));
    expect(await readdir(cache)).toHaveLength(1);
  });

  it('samples with Dopri5 and says that it ignores --steps', async () => {
    const out = join(dir, 'dopri5');
    const result = await generate(out, '--count', '1', '--seed', '3', '--solver', 'dopri5', '--steps', '5', '--cfg', '1');
    expect(result.stderr).toContain('pixelflow generate: note: dopri5 chooses its own steps and ignores --steps and --shift');
    const png = await readFile(join(out, 'pixelflow-3-00.png'));
    expect(decode(png).width).toBe(SIDE);
    expect(parameters(png)).toMatchObject({ solver: 'dopri5', cfg_scale: 1 });
    const stageLines = result.stderr.split('\n').filter((line) => line.startsWith('stage '));
    expect(stageLines).toHaveLength(4);
  });

  it('stops on Ctrl-C with status 130 and writes no images', async () => {
    const out = join(dir, 'interrupted');
    const { code, stdout, stderr } = await interruptMidSampling(['--import', 'tsx', MAIN], ['--model', TINY, '--threads', '1', '--out', out, '--count', '8', '--steps', '100']);
    expect(code).toBe(130);
    expect(stdout).toBe('');
    expect(stderr.trimEnd().split('\n').at(-1)).toBe('pixelflow generate: interrupted by SIGINT; no images written');
    expect(stderr).not.toContain('stage 4/4');
    expect(existsSync(out)).toBe(false);
  });

  it('prints its usage for --help and is listed in pixelflow --help', async () => {
    const help = await pixelflow(['generate', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: pixelflow generate \[--model DIR\] \[options\]/);
    for (const flag of ['--class', '--count', '--seed', '--cfg', '--shift', '--steps', '--solver', '--provider', '--out', '--noise', '--dump', '--json', '--threads']) {
      expect(help.stdout).toContain(flag);
    }
    expect((await pixelflow(['--help'])).stdout).toMatch(/^ {2}generate +Generate images/m);
  });
});

describe('pixelflow generate: bad input', () => {
  const paths = {
    noOnnx: '',
    wrongInputs: '',
    noise: '',
    noiseF64: '',
    noiseMissing: '',
    file: '',
  };

  beforeAll(async () => {
    // A model folder whose pixelflow.json is fine but has no model.onnx beside it.
    paths.noOnnx = join(dir, 'no-onnx');
    await mkdir(paths.noOnnx);
    await copyFile(join(TINY, 'pixelflow.json'), join(paths.noOnnx, 'pixelflow.json'));
    // A valid pixelflow.json that names an input the model does not have.
    paths.wrongInputs = join(dir, 'wrong-inputs');
    await mkdir(paths.wrongInputs);
    await copyFile(join(TINY, 'model.onnx'), join(paths.wrongInputs, 'model.onnx'));
    const manifest = JSON.parse(await readFile(join(TINY, 'pixelflow.json'), 'utf8')) as { onnx: { inputs: { x: string } } };
    manifest.onnx.inputs.x = 'image';
    await writeFile(join(paths.wrongInputs, 'pixelflow.json'), JSON.stringify(manifest));
    // Noise for 2 images, then variants with a float64 file and a missing file.
    const writeNoise = async (folder: string, options: { f64?: boolean; skip?: string } = {}): Promise<void> => {
      await mkdir(folder);
      for (const [k, side] of [4, 8, 16, 32].entries()) {
        const name = k === 0 ? 'noise_stage0.npy' : `noise_block_${k}.npy`;
        if (name === options.skip) continue;
        const shape = [2, 3, side, side];
        const count = 2 * 3 * side * side;
        if (options.f64 && k === 2) await writeNpy(join(folder, name), { dtype: '<f8', shape, data: new Float64Array(count) });
        else await writeNpy(join(folder, name), { dtype: '<f4', shape, data: new Float32Array(count) });
      }
    };
    paths.noise = join(dir, 'noise-2');
    await writeNoise(paths.noise);
    paths.noiseF64 = join(dir, 'noise-f64');
    await writeNoise(paths.noiseF64, { f64: true });
    paths.noiseMissing = join(dir, 'noise-missing');
    await writeNoise(paths.noiseMissing, { skip: 'noise_block_3.npy' });
    paths.file = join(dir, 'a-file');
    await writeFile(paths.file, 'not a folder');
  });

  // Lazy: the temporary folder exists only once the tests run.
  const cases: [string, () => string[], () => string | RegExp][] = [
    ['an unknown class name', () => ['--class', 'dgo'], () => '--class "dgo" is not a class of this model'],
    [
      'a misspelt class name',
      () => ['--class', 'clas 3'],
      () => '--class "clas 3" is not a class of this model (did you mean "class 3", "class 0" or "class 1"?)',
    ],
    ['a class index past the last', () => ['--class', '12'], () => '--class 12 is out of range 0..9'],
    ['the null label as class', () => ['--class', '10'], () => '--class 10 is out of range 0..9 (10 is the null label, the unconditional branch)'],
    ['steps 0', () => ['--steps', '0'], () => '--steps must be an integer from 1 to 100, not 0'],
    ['a steps list that is too short', () => ['--steps', '2,2,2'], () => '--steps has 3 entries but the model has 4 stages'],
    ['a steps list with a bad entry', () => ['--steps', '2,0,2,2'], () => '--steps entry 2 must be an integer from 1 to 100, not 0'],
    ['a non-numeric steps entry', () => ['--steps', '2,x,2,2'], () => '--steps entry 2 must be an integer from 1 to 100, not "x"'],
    ['CFG below 1', () => ['--cfg', '0.5'], () => '--cfg must be a number from 1 to 25, not 0.5'],
    ['a non-numeric CFG', () => ['--cfg', 'four'], () => '--cfg must be a number from 1 to 25, not "four"'],
    ['shift below 1', () => ['--shift', '0'], () => '--shift must be a number from 1 to 100, not 0'],
    ['count 0', () => ['--count', '0'], () => '--count must be an integer from 1 to 8, not 0'],
    ['a non-numeric seed', () => ['--seed', 'abc'], () => '--seed must be an integer from 0 to 4294967295, not "abc"'],
    ['an unknown solver', () => ['--solver', 'heun'], () => '--solver must be "euler" or "dopri5", not "heun"'],
    ['an unknown provider', () => ['--provider', 'tpu'], () => "--provider must be cpu or cuda, not 'tpu'"],
    ['zero threads', () => ['--threads', '0'], () => "--threads must be an integer from 1 to 1024, not '0'"],
    ['an unknown option', () => ['--size', '64'], () => 'unknown option --size (see pixelflow generate --help)'],
    ['a positional argument', () => ['daisy'], () => "unexpected argument 'daisy' (options take the form --name value)"],
    ['a missing model folder', () => ['--model', join(dir, 'nope')], () => `model folder not found: ${join(dir, 'nope')}`],
    [
      'a model folder without model.onnx',
      () => ['--model', paths.noOnnx],
      () => `model file of ${join(paths.noOnnx, 'pixelflow.json')} not found: ${join(paths.noOnnx, 'model.onnx')}`,
    ],
    [
      'a pixelflow.json that disagrees with the model',
      () => ['--model', paths.wrongInputs],
      () => /wrong-inputs: pixelflow\.json disagrees with model\.onnx: onnx\.inputs\.x is 'image' but the model has no such input/,
    ],
    [
      'noise for another image count',
      () => ['--noise', paths.noise, '--count', '3'],
      () => `--noise: ${join(paths.noise, 'noise_stage0.npy')} must be float32 [3, 3, 4, 4] for 3 images, found float32 [2, 3, 4, 4]`,
    ],
    [
      'noise of the wrong dtype',
      () => ['--noise', paths.noiseF64, '--count', '2'],
      () => `--noise: ${join(paths.noiseF64, 'noise_block_2.npy')} must be float32 [2, 3, 16, 16] for 2 images, found float64 [2, 3, 16, 16]`,
    ],
    [
      'a missing noise file',
      () => ['--noise', paths.noiseMissing, '--count', '2'],
      () => `--noise: ${join(paths.noiseMissing, 'noise_block_3.npy')} not found (expected float32 [2, 3, 32, 32])`,
    ],
    ['an --out that is a file', () => ['--out', paths.file], () => `--out ${paths.file} exists and is not a folder`],
    ['a --dump inside a file', () => ['--dump', join(paths.file, 'dump')], () => `--dump ${join(paths.file, 'dump')}: ${paths.file} is not a folder`],
  ];

  // Each range's lower end here; both ends of every range are in packages/schemas/test/generation.test.ts.
  // Independent processes: run them side by side.
  it.concurrent.for(cases)('exits 2 with one line for %s', async ([, args, message], { expect }) => {
    const out = join(dir, `bad-out-${sha256(Buffer.from(JSON.stringify(args()))).slice(0, 12)}`);
    // Later flags win in parseArgs, so a case's own --model or --out replaces the default.
    const base = ['--model', TINY, '--out', out, '--steps', '1', '--count', '1'];
    const result = await pixelflow(['generate', ...base, ...args()]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    const lines = result.stderr.split('\n');
    expect(lines, result.stderr).toHaveLength(2);
    expect(lines[1]).toBe('');
    const prefix = 'pixelflow generate: ';
    expect(lines[0]?.startsWith(prefix), lines[0]).toBe(true);
    const text = lines[0]?.slice(prefix.length) ?? '';
    const expected = message();
    if (typeof expected === 'string') expect(text).toBe(expected);
    else expect(text).toMatch(expected);
    expect(existsSync(out), 'nothing written').toBe(false);
  });
});
