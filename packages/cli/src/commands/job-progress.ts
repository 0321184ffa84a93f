import type { StepProgress } from '@pixelflow/sampler';

// A job's progress events as the sampler's per-call progress, for the progress bar and its ETA
// (progress.ts), which `generate` feeds straight from the sampler. The worker sends its reports in
// bursts (one Redis write per interval), so the events of a burst carry the same time; the calls
// of a burst are spread evenly over the time since the previous burst, which is when they ran.

/** The data of a `progress` event. */
export interface ProgressEventData {
  stage: number;
  stages: number;
  /** Model calls done, over all stages. */
  step: number;
  steps_total: number;
}

interface Pending {
  data: ProgressEventData;
  atMs: number;
}

export class ProgressFromEvents {
  private readonly steps: readonly number[] | null;
  private pending: Pending[] = [];
  private lastAtMs = 0;
  private lastStep = 0;
  private stage = -1;
  private stageStartStep = 0;

  /** `steps`: steps per stage under Euler; null under Dopri5, which decides them as it goes. */
  constructor(steps: readonly number[] | null) {
    this.steps = steps;
  }

  /**
   * One `progress` event, `atMs` after the job started (its stream id's time). Returns the calls
   * of the burst before it, now that this event shows that burst ended.
   */
  add(data: ProgressEventData, atMs: number): StepProgress[] {
    const done = this.pending.length > 0 && this.pending[0]!.atMs !== atMs ? this.flush() : [];
    this.pending.push({ data, atMs });
    return done;
  }

  /** The calls still held back: when another kind of event shows the burst is over. */
  flush(): StepProgress[] {
    const burst = this.pending;
    this.pending = [];
    const last = burst.at(-1);
    if (!last) return [];
    const from = this.lastAtMs;
    const calls: StepProgress[] = [];
    for (const [i, { data }] of burst.entries()) {
      if (data.stage !== this.stage) {
        this.stage = data.stage;
        this.stageStartStep = this.steps ? this.steps.slice(0, data.stage).reduce((sum, n) => sum + n, 0) : this.lastStep;
      }
      this.lastStep = data.step;
      calls.push({
        stage: data.stage,
        stages: data.stages,
        stepInStage: data.step - this.stageStartStep,
        stageSteps: this.steps?.[data.stage] ?? null,
        stepsDone: data.step,
        stepsTotal: this.steps ? data.steps_total : null,
        elapsedMs: from + ((last.atMs - from) * (i + 1)) / burst.length,
      });
    }
    this.lastAtMs = last.atMs;
    return calls;
  }
}
