import { describe, expect, it } from 'vitest';
import { DEFAULT_SCHEDULE, retryDelayMs, retrySpanMs } from '../src/schedule.ts';

describe('the retry schedule', () => {
  it('doubles from the first wait up to the cap', () => {
    const schedule = { backoffMs: 10_000, backoffMaxMs: 3_600_000 };
    expect([1, 2, 3, 9, 10, 30].map((n) => retryDelayMs(n, schedule))).toEqual([10_000, 20_000, 40_000, 2_560_000, 3_600_000, 3_600_000]);
    expect(retryDelayMs(5000, schedule)).toBe(3_600_000);
  });

  it('retries for at least 24 hours by default (25 h 25 min)', () => {
    expect(retrySpanMs(DEFAULT_SCHEDULE)).toBeGreaterThanOrEqual(24 * 3600_000);
    expect(retrySpanMs(DEFAULT_SCHEDULE)).toBe(5_110_000 + 24 * 3_600_000);
  });

  it('spans nothing with one attempt', () => {
    expect(retrySpanMs({ attempts: 1, backoffMs: 1000, backoffMaxMs: 1000 })).toBe(0);
  });
});
