import type { StepProgress } from '@pixelflow/sampler';
import { describe, expect, it } from 'vitest';
import { batchFactors, formatDuration, GenerationProgress, type ProgressPlan } from '../src/progress.ts';

// The progress display against a fake stderr: what a terminal gets (one line redrawn in place)
// and what a log gets (a line per stage). The CLI tests run without a terminal, so the terminal
// path is checked here.

const CLEAR_LINE = '\r\x1b[2K';

class FakeStream {
  chunks: string[] = [];
  readonly isTTY: boolean;
  readonly columns: number;
  constructor(isTTY: boolean, columns = 200) {
    this.isTTY = isTTY;
    this.columns = columns;
  }
  write(chunk: string): boolean {
    this.chunks.push(chunk);
    return true;
  }
  /** What a terminal shows: each chunk after a carriage return replaces the line. */
  get screen(): string[] {
    const lines: string[] = [];
    let current = '';
    for (const chunk of this.chunks) {
      for (const part of chunk.replaceAll(CLEAR_LINE, '\0').split(/(\0|\n)/)) {
        if (part === '\0') current = '';
        else if (part === '\n') {
          lines.push(current);
          current = '';
        } else current += part;
      }
    }
    if (current !== '') lines.push(current);
    return lines;
  }
}

const plan: ProgressPlan = { resolutions: [4, 8, 16, 32], batchFactors: [1, 2, 2, 2], steps: [2, 2, 2, 2] };

/** The StepProgress sequence of an Euler run where every call at stage k takes `perCall[k]` ms. */
function eulerSteps(steps: readonly number[], perCall: readonly number[]): StepProgress[] {
  const out: StepProgress[] = [];
  const total = steps.reduce((a, b) => a + b, 0);
  let elapsed = 0;
  let done = 0;
  steps.forEach((n, stage) => {
    for (let i = 1; i <= n; i++) {
      elapsed += perCall[stage] ?? 0;
      done++;
      out.push({ stage, stages: steps.length, stepInStage: i, stageSteps: n, stepsDone: done, stepsTotal: total, elapsedMs: elapsed });
    }
  });
  return out;
}

describe('formatDuration', () => {
  it.each([
    [0, '0ms'],
    [85.4, '85ms'],
    [999.4, '999ms'],
    [999.6, '1.0s'],
    [12_345, '12.3s'],
    [245_000, '4m05s'],
    [3_725_000, '1h02m'],
  ])('%d ms is %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

describe('batchFactors', () => {
  it('doubles the batch where CFG runs the null half', () => {
    expect(batchFactors([1, 1.5, 3, 4])).toEqual([1, 2, 2, 2]);
    expect(batchFactors([1, 1, 1, 1])).toEqual([1, 1, 1, 1]);
  });
});

describe('GenerationProgress without a terminal', () => {
  it('prints a line per finished stage and nothing per step', () => {
    const stream = new FakeStream(false);
    const progress = new GenerationProgress(stream, plan);
    const steps = eulerSteps([2, 2, 2, 2], [10, 20, 40, 80]);
    for (const p of steps) {
      progress.step(p);
      if (p.stepInStage === p.stageSteps) progress.stageEnd(p.stage);
    }
    progress.line('done');
    expect(stream.chunks.join('')).toBe(
      [
        'stage 1/4 4px done: 2 steps, 20ms elapsed',
        'stage 2/4 8px done: 2 steps, 60ms elapsed',
        'stage 3/4 16px done: 2 steps, 140ms elapsed',
        'stage 4/4 32px done: 2 steps, 300ms elapsed',
        'done',
        '',
      ].join('\n'),
    );
  });

  it('never shows a passing status', () => {
    const stream = new FakeStream(false);
    new GenerationProgress(stream, plan).status('loading ...');
    expect(stream.chunks).toEqual([]);
  });
});

describe('GenerationProgress on a terminal', () => {
  it('redraws one line with steps, stage, elapsed time and an estimate', () => {
    const stream = new FakeStream(true);
    const progress = new GenerationProgress(stream, plan, { redrawIntervalMs: 0 });
    const steps = eulerSteps([2, 2, 2, 2], [10, 20, 40, 80]);
    const lines = steps.map((p) => {
      progress.step(p);
      return stream.screen.at(-1);
    });
    // Stage 1 alone cannot tell how the time grows with size: no estimate yet.
    expect(lines[0]).toBe('[###-----------------] 1/8 steps | stage 1/4 4px | 10ms, ETA estimating ...');
    expect(lines[1]).toBe('[#####---------------] 2/8 steps | stage 1/4 4px | 20ms, ETA estimating ...');
    // Stage 2's first call is left out of its pace (it pays for the stage change).
    expect(lines[2]).toBe('[########------------] 3/8 steps | stage 2/4 8px | 40ms, ETA estimating ...');
    // Stage 2 done: 10 ms per call at 16 pixels a call, 20 ms at 2 x 64, so 10/112 ms per pixel on
    // top of the overhead; stage 3 (2 x 256 pixels) 20 + 384 x 10/112 = 54.3 ms a call, stage 4
    // (2 x 1024) 191.4 ms: 2 x 54.3 + 2 x 191.4. These calls grow less than their pixels, so that
    // is high, and the display comes down towards each better estimate, never up.
    expect(lines[3]).toBe('[##########----------] 4/8 steps | stage 2/4 8px | 60ms, ETA 491ms');
    const etas = lines.slice(3, 7).map((line) => Number(/ETA (\d+)ms$/.exec(line ?? '')?.[1]));
    etas.forEach((eta, i) => (i > 0 ? expect(eta).toBeLessThan(etas[i - 1] as number) : undefined));
    expect(lines[7]).toBe('[####################] 8/8 steps | stage 4/4 32px | 300ms, ETA 0ms');
    // One line on screen, redrawn: no newline was written.
    expect(stream.chunks.join('')).not.toContain('\n');
    progress.line('pixelflow generate: done');
    expect(stream.screen).toEqual(['pixelflow generate: done']);
  });

  it('redraws at most once per interval within a stage, and at every stage change and the end', () => {
    let now = 0;
    const stream = new FakeStream(true);
    const progress = new GenerationProgress(stream, { ...plan, steps: [3, 3, 3, 3] }, { now: () => now, redrawIntervalMs: 100 });
    for (const p of eulerSteps([3, 3, 3, 3], [10, 10, 10, 10])) {
      now += 10;
      progress.step(p);
    }
    // 12 calls 10 ms apart: the first of each stage (4) and the very last.
    expect(stream.chunks).toHaveLength(5);
  });

  it('counts stages, not steps, under Dopri5', () => {
    const stream = new FakeStream(true);
    const progress = new GenerationProgress(stream, { ...plan, steps: null }, { redrawIntervalMs: 0 });
    progress.step({ stage: 2, stages: 4, stepInStage: 17, stageSteps: null, stepsDone: 60, stepsTotal: null, elapsedMs: 1500 });
    expect(stream.screen).toEqual(['[##########----------] step 17 | stage 3/4 16px | 1.5s']);
  });

  it('fits the line to the terminal width', () => {
    const stream = new FakeStream(true, 30);
    const progress = new GenerationProgress(stream, plan);
    progress.step(eulerSteps([2, 2, 2, 2], [10, 10, 10, 10])[0] as StepProgress);
    expect(stream.screen[0]).toBe('[###-----------------] 1/8 st');
  });

  it('shows a passing status that the next line replaces, and clears the bar', () => {
    const stream = new FakeStream(true);
    const progress = new GenerationProgress(stream, plan);
    progress.status('loading model.onnx on cpu ...');
    expect(stream.screen).toEqual(['loading model.onnx on cpu ...']);
    progress.line('header');
    expect(stream.screen).toEqual(['header']);
    progress.step(eulerSteps([2, 2, 2, 2], [10, 10, 10, 10])[0] as StepProgress);
    progress.clear();
    expect(stream.screen).toEqual(['header']);
    // Clearing twice writes nothing more.
    const written = stream.chunks.length;
    progress.clear();
    expect(stream.chunks).toHaveLength(written);
  });
});
