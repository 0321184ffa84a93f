// The time left in a cascaded generation, for `pixelflow generate`'s progress bar.
//
// Two parts. The estimate: what the calls measured so far say about the rest, with every stage's
// cost per call predicted from its size before it starts. The display: what the user is shown,
// moved towards the estimate smoothly enough that the number never jumps: it counts down with the
// clock, falls at most 1 + 1/ETA_CATCH_UP times as fast when the estimate says less, and holds still
// (never rises) when it says more.
//
// Why a model of the stages: later stages cost much more per call (4x the pixels each), so the
// pace of the calls so far says little about the rest on its own. A call costs a fixed overhead
// plus time in proportion to the pixels it processes (images x side^2); on small models and small
// stages the overhead dominates, on large ones the pixels. The line through the last two stages
// measured separates the two and predicts the stages still to come; a stage that has started
// sharpens its own prediction call by call. Before two stages have been measured nothing tells
// overhead from pixels (the last stage could cost 1x or 64x the first per call), so no ETA is shown.

/** The stages of one generation, known before it starts. */
export interface EtaPlan {
  /** Side of each stage's state, in pixels. */
  resolutions: readonly number[];
  /** Images per model call relative to the batch at each stage: 2 where CFG runs the null half too, else 1. */
  batchFactors: readonly number[];
  /** Model calls per stage. */
  steps: readonly number[];
}

/** One finished model call, as the sampler reports it. */
export interface EtaCall {
  /** 0-based stage. */
  stage: number;
  /** 1-based call within the stage. */
  stepInStage: number;
  /** Milliseconds since sampling started, at the end of this call. */
  elapsedMs: number;
}

/**
 * Calls after its first that a stage needs before its own pace is trusted without a prediction
 * (unless it has no more calls). A stage's first call is left out: it pays once for new tensor
 * shapes and for the stage change (upsampling, re-noising, the preview).
 */
export const MIN_STAGE_CALLS = 3;
/**
 * A stage's pace is the median of its latest calls: it follows the first calls' warm-up as it
 * fades, and one slow call (a pause of the collector, another process) does not move it.
 */
export const PACE_WINDOW = 5;
/** How many calls a stage's prediction counts as, against the calls it has measured itself. */
export const PREDICTION_WEIGHT = 2;
/**
 * How fast the display closes the gap to the estimate: with a time constant of ETA_CATCH_UP x
 * the time left, the same for a 1 s and a 10 min generation. It also bounds how fast the display
 * may fall: at most 1 + 1/ETA_CATCH_UP times as fast as the clock.
 */
export const ETA_CATCH_UP = 0.2;

/** What the calls of one stage measured. */
export interface StageCalls {
  /** Calls so far. */
  calls: number;
  /** Duration of the first call, ms (null before it). */
  firstMs: number | null;
  /** Calls after the first. */
  counted: number;
  /** Durations of the latest PACE_WINDOW calls after the first, ms, oldest first. */
  recentMs: readonly number[];
}

export function noStageCalls(): StageCalls {
  return { calls: 0, firstMs: null, counted: 0, recentMs: [] };
}

/** `stats` after one more call of `durationMs`. */
export function withCall(stats: StageCalls, durationMs: number): StageCalls {
  if (stats.calls === 0) return { ...stats, calls: 1, firstMs: durationMs };
  return { calls: stats.calls + 1, firstMs: stats.firstMs, counted: stats.counted + 1, recentMs: [...stats.recentMs, durationMs].slice(-PACE_WINDOW) };
}

/** ms per call the stage's own calls say: the median of its latest calls after the first; null before its second. */
export function stagePace(stats: StageCalls): number | null {
  const sorted = [...stats.recentMs].sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** Pixels one call of stage k processes, over all its images: what its cost grows with. */
function callPixels(plan: EtaPlan, k: number): number {
  const side = plan.resolutions[k] ?? 0;
  return (plan.batchFactors[k] ?? 1) * side * side;
}

/**
 * Expected ms per call at every stage (null where the evidence cannot tell yet), stage by stage:
 * the line through the two stages before predicts a stage; the stage's own calls, once it has
 * them, are averaged with that prediction (counted as PREDICTION_WEIGHT calls). Without a
 * prediction, a stage needs MIN_STAGE_CALLS of its own.
 */
export function perCallEstimates(plan: EtaPlan, stages: readonly StageCalls[]): (number | null)[] {
  const estimates: (number | null)[] = [];
  for (let k = 0; k < plan.steps.length; k++) {
    const predicted = predictFromEarlier(plan, estimates, k);
    const stats = stages[k] ?? noStageCalls();
    const complete = stats.calls >= (plan.steps[k] ?? 0) && stats.calls > 0;
    const pace = stagePace(stats);
    // A one-call stage that is over has nothing but its first call to go by.
    const measured = pace ?? (complete ? stats.firstMs : null);
    const weight = pace !== null ? stats.counted : measured !== null ? 1 : 0;
    if (predicted !== null) {
      estimates.push(measured === null ? predicted : (PREDICTION_WEIGHT * predicted + weight * measured) / (PREDICTION_WEIGHT + weight));
    } else if (measured !== null && (weight >= MIN_STAGE_CALLS || complete)) {
      estimates.push(measured);
    } else {
      estimates.push(null);
    }
  }
  return estimates;
}

/** Stage k's ms per call as the stages before it predict: overhead + pixels through the last two, or the same as a stage of its size. */
function predictFromEarlier(plan: EtaPlan, estimates: readonly (number | null)[], k: number): number | null {
  if (k < 1) return null;
  const last = estimates[k - 1];
  if (last === null || last === undefined) return null;
  const pixels = callPixels(plan, k);
  const lastPixels = callPixels(plan, k - 1);
  if (pixels === lastPixels) return last;
  if (k < 2) return null;
  const before = estimates[k - 2];
  const beforePixels = callPixels(plan, k - 2);
  if (before === null || before === undefined || beforePixels === lastPixels) return null;
  // A larger stage never costs less per call: a falling slope is noise.
  const perPixel = Math.max(0, (last - before) / (lastPixels - beforePixels));
  return Math.max(0, last + perPixel * (pixels - lastPixels));
}

/**
 * Best estimate of the ms left after `callsInStage` calls of `stage`, or null while the evidence
 * cannot tell (fewer than two stages measured, when later stages differ in size).
 */
export function estimateRemainingMs(plan: EtaPlan, stages: readonly StageCalls[], stage: number, callsInStage: number): number | null {
  const estimates = perCallEstimates(plan, stages);
  let total = 0;
  for (let k = stage; k < plan.steps.length; k++) {
    const calls = (plan.steps[k] ?? 0) - (k === stage ? callsInStage : 0);
    if (calls <= 0) continue;
    const perCall = estimates[k];
    if (perCall === null || perCall === undefined) return null;
    total += calls * perCall;
  }
  return total;
}

/** An ETA on display and when (ms since sampling started) it was shown. */
export interface ShownEta {
  ms: number;
  atMs: number;
}

/**
 * The ETA to show at `nowMs`, given the one shown before and the current estimate: the previous
 * one counted down by the time since, moved towards the estimate with a time constant of
 * ETA_CATCH_UP x the time left (so a wrong early estimate is corrected gradually, and noise is
 * damped), and never above the previous one: an estimate that grew makes the display wait, not
 * climb. The first estimate is shown as it is; without an estimate the display just counts down.
 */
export function nextShownEta(previous: ShownEta | null, estimateMs: number | null, nowMs: number): number | null {
  if (previous === null) return estimateMs === null ? null : Math.max(0, estimateMs);
  const elapsed = Math.max(0, nowMs - previous.atMs);
  const countedDown = Math.max(0, previous.ms - elapsed);
  if (estimateMs === null) return countedDown;
  const target = Math.max(0, estimateMs);
  const timeConstant = ETA_CATCH_UP * Math.max(countedDown, target, 1);
  const moved = target + (countedDown - target) * Math.exp(-elapsed / timeConstant);
  return Math.min(moved, previous.ms);
}

/** Follows one Euler generation call by call and says which ETA to show. */
export class EtaEstimator {
  private readonly plan: EtaPlan;
  private readonly stages: StageCalls[];
  private lastElapsedMs = 0;
  private shown: ShownEta | null = null;

  constructor(plan: EtaPlan) {
    this.plan = plan;
    this.stages = plan.steps.map(() => noStageCalls());
  }

  /** After every model call: the ETA to show now in ms, or null while there is not enough evidence. */
  observe(call: EtaCall): number | null {
    const duration = Math.max(0, call.elapsedMs - this.lastElapsedMs);
    this.lastElapsedMs = call.elapsedMs;
    const stats = this.stages[call.stage];
    if (stats === undefined) return this.shownMs;
    this.stages[call.stage] = withCall(stats, duration);
    const stepsLeft = this.plan.steps.slice(call.stage).reduce((sum, n) => sum + n, 0) - call.stepInStage;
    // Done is not an estimate.
    const ms = stepsLeft <= 0 ? 0 : nextShownEta(this.shown, estimateRemainingMs(this.plan, this.stages, call.stage, call.stepInStage), call.elapsedMs);
    this.shown = ms === null ? null : { ms, atMs: call.elapsedMs };
    return ms;
  }

  /** The ETA shown last, in ms; null while estimating. */
  get shownMs(): number | null {
    return this.shown?.ms ?? null;
  }
}
