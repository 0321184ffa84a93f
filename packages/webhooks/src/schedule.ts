// When a failed delivery is tried again: exponential from `backoffMs`, doubling per failure, each
// wait capped at `backoffMaxMs` so that a receiver back after a long outage hears from us within
// one cap rather than after a day-long final gap. The defaults retry for more than 24 hours.

export interface RetrySchedule {
  /** Attempts in all, the first included. */
  attempts: number;
  /** The wait after the first failure; each next failure doubles it. */
  backoffMs: number;
  /** The longest wait between two attempts. */
  backoffMaxMs: number;
}

/** 10 s, 20 s, 40 s ... 42 min 40 s (9 waits, 85 min in all), then 24 waits of one hour: 25 h 25 min over 34 attempts. */
export const DEFAULT_SCHEDULE: RetrySchedule = { attempts: 34, backoffMs: 10_000, backoffMaxMs: 3_600_000 };

/** The wait after the `failures`-th failed attempt (1 = the first). */
export function retryDelayMs(failures: number, schedule: Pick<RetrySchedule, 'backoffMs' | 'backoffMaxMs'>): number {
  // 2^40 times any delay is past any cap; stopping there keeps the power finite.
  return Math.min(schedule.backoffMs * 2 ** Math.min(failures - 1, 40), schedule.backoffMaxMs);
}

/** How long after the first attempt the last one happens, when every attempt fails. */
export function retrySpanMs(schedule: RetrySchedule): number {
  let total = 0;
  for (let failures = 1; failures < schedule.attempts; failures++) total += retryDelayMs(failures, schedule);
  return total;
}
