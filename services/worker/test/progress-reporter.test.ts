import type { JobProgress } from '@pixelflow/schemas';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ProgressReporter } from '../src/progress-reporter.ts';

function step(n: number): JobProgress {
  return { stage: 0, stages: 4, step: n, steps_total: 40, fraction: n / 40 };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('ProgressReporter', () => {
  it('sends the first report at once, then what piles up at most every interval, every report kept in order', () => {
    vi.useFakeTimers();
    const sent: number[][] = [];
    const reporter = new ProgressReporter((reports) => sent.push(reports.map((r) => r.step)), 25, () => Date.now());
    reporter.report(step(1));
    expect(sent).toEqual([[1]]);
    vi.advanceTimersByTime(10);
    reporter.report(step(2));
    reporter.report(step(3));
    expect(sent).toEqual([[1]]);
    vi.advanceTimersByTime(15);
    expect(sent).toEqual([[1], [2, 3]]);
    vi.advanceTimersByTime(100);
    reporter.report(step(4)); // long after the last burst: at once
    expect(sent).toEqual([[1], [2, 3], [4]]);
  });

  it('sends what is pending when flushed (a stage end, the job stopping), and nothing when nothing is', () => {
    vi.useFakeTimers();
    const sent: number[][] = [];
    const reporter = new ProgressReporter((reports) => sent.push(reports.map((r) => r.step)), 25, () => Date.now());
    reporter.report(step(1));
    reporter.report(step(2));
    reporter.flush();
    expect(sent).toEqual([[1], [2]]);
    reporter.flush();
    vi.advanceTimersByTime(100);
    expect(sent).toEqual([[1], [2]]);
  });

  it('hands over what is pending for another write to carry, which counts as a burst sent', () => {
    vi.useFakeTimers();
    const sent: number[][] = [];
    const reporter = new ProgressReporter((reports) => sent.push(reports.map((r) => r.step)), 25, () => Date.now());
    reporter.report(step(1));
    reporter.report(step(2));
    reporter.report(step(3));
    expect(reporter.take().map((r) => r.step)).toEqual([2, 3]);
    expect(reporter.take()).toEqual([]);
    vi.advanceTimersByTime(100); // the timer for 2 and 3 was cleared
    expect(sent).toEqual([[1]]);
    reporter.report(step(4)); // the interval counts from the take
    vi.advanceTimersByTime(100);
    expect(sent).toEqual([[1], [4]]);
  });
});
