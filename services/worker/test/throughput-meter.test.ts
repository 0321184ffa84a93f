import { describe, expect, it } from 'vitest';
import { ThroughputMeter } from '../src/throughput-meter.ts';

describe('ThroughputMeter', () => {
  it('divides the time any job ran by the work done, so concurrent jobs amortise it', () => {
    let now = 0;
    const meter = new ThroughputMeter(() => now);
    meter.jobStarted();
    meter.jobStarted();
    now = 1000;
    meter.worked(50);
    meter.worked(50);
    meter.jobEnded();
    meter.jobEnded();
    // Two jobs of 50 image-steps in one second together: 10 ms each, not 20.
    expect(meter.take()).toBeCloseTo(0.01, 12);
  });

  it('leaves idle time out, and starts a new window at each take', () => {
    let now = 0;
    const meter = new ThroughputMeter(() => now);
    meter.jobStarted();
    now = 500;
    meter.worked(10);
    meter.jobEnded();
    now = 10_000; // idle
    meter.jobStarted();
    now = 10_500;
    meter.worked(10);
    meter.jobEnded();
    expect(meter.take()).toBeCloseTo(0.05, 12);
    expect(meter.take()).toBeNull();
  });

  it("counts a running job's time and work up to the take, and says nothing without work", () => {
    let now = 0;
    const meter = new ThroughputMeter(() => now);
    meter.jobStarted();
    now = 200;
    expect(meter.take()).toBeNull();
    meter.worked(4);
    now = 400;
    expect(meter.take()).toBeCloseTo(0.1, 12);
    expect(meter.take(0.5)).toBeNull();
  });
});
