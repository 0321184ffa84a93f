import type { StepProgress } from '@pixelflow/sampler';
import { EtaEstimator } from './eta.ts';

// Progress of one generation on stderr. On a terminal: one line redrawn in
// place (a bar over all steps of all stages, the stage and its resolution,
// elapsed time and an estimate of the rest, from eta.ts). Anywhere else (CI logs, pipes):
// a plain line when each stage ends, so logs stay readable and short.
// StatusLine, the redrawn line itself, serves `eval`'s progress too.

/** Where progress goes: process.stderr, or a fake in tests. */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressPlan {
  /** Side of each stage's state, in pixels. */
  resolutions: readonly number[];
  /** Images per model call relative to the batch at each stage: 2 where CFG runs the null half too, else 1. */
  batchFactors: readonly number[];
  /** Steps per stage; null under Dopri5, whose step count is not known in advance. */
  steps: readonly number[] | null;
}

export interface ProgressOptions {
  /** Milliseconds; injectable for tests. */
  now?: () => number;
  /** Least time between two redraws of the terminal line. */
  redrawIntervalMs?: number;
}

const BAR_WIDTH = 20;
const DEFAULT_REDRAW_MS = 100;
/** Erase the whole line and return to its start. */
const CLEAR_LINE = '\r\x1b[2K';

/** `85ms`, `12.3s`, `4m05s`, `1h02m`. */
export function formatDuration(ms: number): string {
  if (ms < 999.5) return `${Math.round(Math.max(0, ms))}ms`;
  const seconds = ms / 1000;
  if (seconds < 59.95) return `${seconds.toFixed(1)}s`;
  const whole = Math.round(seconds);
  if (whole < 3600) return `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, '0')}s`;
  return `${Math.floor(whole / 3600)}h${String(Math.floor((whole % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * Images per model call at each stage relative to the batch: 2 when CFG runs
 * the null half too (the stage's guidance scale is not 1), else 1.
 */
export function batchFactors(stageScales: readonly number[]): number[] {
  return stageScales.map((scale) => (scale === 1 ? 1 : 2));
}

/**
 * One status line on stderr: on a terminal, redrawn in place and cleared before any other line;
 * elsewhere, passing statuses are dropped and only whole lines are written, so logs stay short.
 */
export class StatusLine {
  readonly tty: boolean;
  private readonly stream: ProgressStream;
  private lineShown = false;

  constructor(stream: ProgressStream) {
    this.stream = stream;
    this.tty = stream.isTTY === true;
  }

  /** A passing status ("loading the model ..."), replaced by whatever comes next; nothing off a terminal. */
  status(text: string): void {
    if (!this.tty) return;
    const columns = this.stream.columns && this.stream.columns > 0 ? this.stream.columns : 80;
    // One character short of the width: writing the last column makes some terminals wrap.
    this.stream.write(`${CLEAR_LINE}${text.slice(0, columns - 1)}`);
    this.lineShown = true;
  }

  /** Prints a line of its own, below (or instead of) the status. */
  line(text: string): void {
    this.clear();
    this.stream.write(`${text}\n`);
  }

  /** Removes the status, e.g. before an error message or at the end. */
  clear(): void {
    if (!this.lineShown) return;
    this.stream.write(CLEAR_LINE);
    this.lineShown = false;
  }
}

export class GenerationProgress {
  private readonly stream: ProgressStream;
  private readonly screen: StatusLine;
  private readonly plan: ProgressPlan;
  private readonly now: () => number;
  private readonly redrawIntervalMs: number;
  private readonly tty: boolean;
  private last: StepProgress | null = null;
  /** Model calls per stage so far (also what Dopri5 actually took). */
  private readonly stageCalls: number[];
  /** Euler only: Dopri5's step counts are not known in advance. */
  private readonly eta: EtaEstimator | null;
  private etaMs: number | null = null;
  private lastDraw = Number.NEGATIVE_INFINITY;
  private lastDrawnStage = -1;

  constructor(stream: ProgressStream, plan: ProgressPlan, options: ProgressOptions = {}) {
    this.stream = stream;
    this.screen = new StatusLine(stream);
    this.plan = plan;
    this.now = options.now ?? (() => performance.now());
    this.redrawIntervalMs = options.redrawIntervalMs ?? DEFAULT_REDRAW_MS;
    this.tty = stream.isTTY === true;
    this.stageCalls = plan.resolutions.map(() => 0);
    this.eta = plan.steps === null ? null : new EtaEstimator({ ...plan, steps: plan.steps });
  }

  /** After every model call. */
  step(progress: StepProgress): void {
    this.last = progress;
    this.stageCalls[progress.stage] = progress.stepInStage;
    if (!this.tty) return;
    // Every call, drawn or not: the estimate learns from each and the display moves with the clock.
    if (this.eta) this.etaMs = this.eta.observe(progress);
    const stageChanged = progress.stage !== this.lastDrawnStage;
    const done = progress.stepsTotal !== null && progress.stepsDone === progress.stepsTotal;
    const t = this.now();
    if (!stageChanged && !done && t - this.lastDraw < this.redrawIntervalMs) return;
    this.lastDraw = t;
    this.lastDrawnStage = progress.stage;
    this.screen.status(this.barLine(progress));
  }

  /** When a stage's last step is done. */
  stageEnd(stage: number): void {
    if (this.tty) return;
    const stages = this.plan.resolutions.length;
    const calls = this.stageCalls[stage] ?? 0;
    const elapsed = this.last ? formatDuration(this.last.elapsedMs) : formatDuration(0);
    this.stream.write(
      `stage ${stage + 1}/${stages} ${this.plan.resolutions[stage] ?? '?'}px done: ${calls} ${calls === 1 ? 'step' : 'steps'}, ${elapsed} elapsed\n`,
    );
  }

  /** A passing status on a terminal ("loading the model ..."), replaced by whatever comes next; nothing elsewhere. */
  status(text: string): void {
    this.screen.status(text);
  }

  /** Prints a line of its own, below (or instead of) the bar. */
  line(text: string): void {
    this.screen.line(text);
  }

  /** Removes the bar, e.g. before an error message or at the end. */
  clear(): void {
    this.screen.clear();
  }

  /** The terminal line: `[#####---------] 12/40 steps | stage 2/4 8px | 1.2s, ETA 3.4s` (`ETA estimating ...` at first). */
  barLine(progress: StepProgress): string {
    const { stage, stages, stepInStage, stepsDone, stepsTotal, elapsedMs } = progress;
    const stageLabel = `stage ${stage + 1}/${stages} ${this.plan.resolutions[stage] ?? '?'}px`;
    if (stepsTotal === null || this.plan.steps === null) {
      // Dopri5 picks its steps as it goes: only whole stages can be counted.
      return `${bar(stage / stages)} step ${stepInStage} | ${stageLabel} | ${formatDuration(elapsedMs)}`;
    }
    const eta = this.etaMs === null ? 'estimating ...' : formatDuration(this.etaMs);
    return `${bar(stepsDone / stepsTotal)} ${stepsDone}/${stepsTotal} steps | ${stageLabel} | ${formatDuration(elapsedMs)}, ETA ${eta}`;
  }
}

/** `[#####---------------]` for a fraction from 0 to 1. */
export function bar(fraction: number): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * BAR_WIDTH);
  return `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]`;
}
