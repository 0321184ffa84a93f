// The worker's throughput as the API's ETAs need it: seconds of this worker's
// time per unit of work (one model call for one job image), over the time any
// job ran. With several jobs sharing model calls, this is the amortised cost,
// which is what a queue of work ahead actually takes: ETA = work x rate.

export class ThroughputMeter {
  private readonly now: () => number;
  private running = 0;
  private busySince = 0;
  private busyMs = 0;
  private imageSteps = 0;

  constructor(now: () => number = () => performance.now()) {
    this.now = now;
  }

  jobStarted(): void {
    if (this.running++ === 0) this.busySince = this.now();
  }

  jobEnded(): void {
    if (this.running === 0) return;
    if (--this.running === 0) this.busyMs += this.now() - this.busySince;
  }

  /** Work done by any running job: `imageSteps` model-call x image units. */
  worked(imageSteps: number): void {
    this.imageSteps += imageSteps;
  }

  /**
   * Seconds per image-step since the last take, then starts a new window; null when the window
   * holds less than `minSeconds` of busy time or no work (too little to say anything).
   */
  take(minSeconds = 0): number | null {
    const now = this.now();
    const busyMs = this.busyMs + (this.running > 0 ? now - this.busySince : 0);
    if (this.imageSteps === 0 || busyMs < minSeconds * 1000) return null;
    const rate = busyMs / 1000 / this.imageSteps;
    this.busyMs = 0;
    this.imageSteps = 0;
    if (this.running > 0) this.busySince = now;
    return rate;
  }
}
