import { describe, expect, it } from 'vitest';
import { ProgressFromEvents, type ProgressEventData } from '../src/commands/job-progress.ts';
import { GenerationProgress } from '../src/progress.ts';

// A job's progress events, as `pixelflow jobs watch` reads them, turned into the sampler's
// per-call progress that generate's bar and ETA take.

const STEPS = [2, 2, 2, 2];

function event(step: number): ProgressEventData {
  const stage = Math.min(3, Math.floor((step - 1) / 2));
  return { stage, stages: 4, step, steps_total: 8 };
}

describe('ProgressFromEvents', () => {
  it('spreads the calls of one burst (events of the same time) evenly over the time since the previous burst', () => {
    const calls = new ProgressFromEvents(STEPS);
    expect(calls.add(event(1), 100)).toEqual([]);
    // Calls 2 and 3 arrive in one burst at 300 ms: the first burst is released, stage by stage.
    expect(calls.add(event(2), 300)).toEqual([{ stage: 0, stages: 4, stepInStage: 1, stageSteps: 2, stepsDone: 1, stepsTotal: 8, elapsedMs: 100 }]);
    calls.add(event(3), 300);
    const burst = calls.add(event(4), 500);
    expect(burst.map((c) => [c.stage, c.stepInStage, c.stepsDone, c.elapsedMs])).toEqual([
      [0, 2, 2, 200],
      [1, 1, 3, 300],
    ]);
    // Another kind of event ends the burst held back.
    expect(calls.flush().map((c) => [c.stage, c.stepInStage, c.elapsedMs])).toEqual([[1, 2, 500]]);
    expect(calls.flush()).toEqual([]);
  });

  it('counts Dopri5 calls within each stage, with no totals (its steps are not known ahead)', () => {
    const calls = new ProgressFromEvents(null);
    calls.add({ stage: 0, stages: 2, step: 1, steps_total: 30 }, 10);
    calls.add({ stage: 0, stages: 2, step: 2, steps_total: 30 }, 20);
    calls.add({ stage: 1, stages: 2, step: 3, steps_total: 30 }, 30);
    const last = calls.flush();
    expect(last).toEqual([{ stage: 1, stages: 2, stepInStage: 1, stageSteps: null, stepsDone: 3, stepsTotal: null, elapsedMs: 30 }]);
  });

  it('drives the same progress bar as generate, with an ETA once two stages ran', () => {
    const chunks: string[] = [];
    const progress = new GenerationProgress({ write: (chunk: string) => chunks.push(chunk), isTTY: true, columns: 200 }, { resolutions: [4, 8, 16, 32], batchFactors: [2, 2, 2, 2], steps: STEPS }, { redrawIntervalMs: 0 });
    const calls = new ProgressFromEvents(STEPS);
    for (let step = 1; step <= 8; step++) for (const call of calls.add(event(step), step * 100)) progress.step(call);
    for (const call of calls.flush()) progress.step(call);
    const lines = chunks.join('').split('\r\x1b[2K').filter((line) => line !== '');
    expect(lines[0]).toMatch(/^\[#+-+\] 1\/8 steps \| stage 1\/4 4px \| 100ms, ETA estimating \.\.\.$/);
    expect(lines.at(-1)).toMatch(/^\[#{20}\] 8\/8 steps \| stage 4\/4 32px \| 800ms, ETA 0ms$/);
    expect(lines.some((line) => /ETA \d/.test(line) && !line.includes('8/8'))).toBe(true);
  });
});
