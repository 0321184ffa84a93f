import { describe, expect, it } from 'vitest';
import { cfgStageWeights, computeStages, dopri5Timestep, eulerGrid, eulerTimestep, scheduleFor } from '../src/scheduler.ts';
import { exampleManifest } from '@pixelflow/schemas/testing';

// PIXELFLOW.md section 3, as printed (six decimals).
const SPEC_TABLE = [
  { startT: 0, endT: 0.25, first: 0, last: 174.825, alpha: null, beta: null },
  { startT: 0.142857, endT: 0.5, first: 175, last: 425.749, alpha: 0.571429, beta: 0.742307 },
  { startT: 0.333333, endT: 0.75, first: 426, last: 718.707, alpha: 0.666667, beta: 0.57735 },
  { startT: 0.6, endT: 1, first: 719, last: 999, alpha: 0.8, beta: 0.34641 },
];
const PRINTED = 5e-7;

describe('scheduler', () => {
  it('reproduces the spec table for 4 stages and 1000 timesteps', () => {
    const stages = computeStages(4, 1000, 256);
    expect(stages.map((s) => s.resolution)).toEqual([32, 64, 128, 256]);
    stages.forEach((stage, k) => {
      const row = SPEC_TABLE[k]!;
      expect(stage.index).toBe(k);
      expect(Math.abs(stage.startT - row.startT)).toBeLessThanOrEqual(PRINTED);
      expect(stage.endT).toBe(row.endT);
      expect(stage.timestepFirst).toBe(row.first);
      expect(Math.abs(stage.timestepLast - row.last)).toBeLessThanOrEqual(PRINTED);
      if (row.alpha === null) {
        expect(stage.renoise).toBeNull();
      } else {
        expect(Math.abs(stage.renoise!.alpha - row.alpha)).toBeLessThanOrEqual(PRINTED);
        expect(Math.abs(stage.renoise!.beta - row.beta!)).toBeLessThanOrEqual(PRINTED);
      }
    });
  });

  it.each([
    [1, 1000],
    [2, 1000],
    [3, 500],
    [5, 1000],
    [6, 2000],
  ])('covers the whole timeline in order for %i stages and %i timesteps', (numStages, timesteps) => {
    const stages = computeStages(numStages, timesteps, 2 ** (numStages + 2));
    expect(stages).toHaveLength(numStages);
    expect(stages[0]!.timestepFirst).toBe(0);
    expect(stages.at(-1)!.timestepLast).toBe(timesteps - 1);
    expect(stages.at(-1)!.endT).toBe(1);
    for (let k = 1; k < numStages; k++) {
      expect(stages[k]!.timestepFirst).toBeGreaterThan(stages[k - 1]!.timestepLast);
      expect(Number.isInteger(stages[k]!.timestepFirst)).toBe(true);
      expect(stages[k]!.startT).toBeLessThan(stages[k - 1]!.endT);
      expect(stages[k]!.resolution).toBe(2 * stages[k - 1]!.resolution);
    }
  });

  it('ramps guidance like the reference for 4 stages, linearly otherwise', () => {
    expect(cfgStageWeights(4)).toEqual([0, 1 / 6, 2 / 3, 1]);
    expect(cfgStageWeights(3)).toEqual([0, 0.5, 1]);
    expect(cfgStageWeights(1)).toEqual([1]);
  });

  it('builds the Euler grid with the shift and the final jump to 1', () => {
    expect(eulerGrid(1, 1)).toEqual([0, 1]);
    const grid = eulerGrid(4, 1);
    [0, 0.333, 0.666, 0.999, 1].forEach((u, i) => expect(grid[i]).toBeCloseTo(u, 12));
    const shifted = eulerGrid(3, 3);
    expect(shifted[1]).toBeCloseTo(0.4995 / (3 - 2 * 0.4995), 12);
    expect(() => eulerGrid(0, 1)).toThrow(RangeError);
  });

  it('maps stage-local time to model timesteps for each solver', () => {
    const stage = computeStages(4, 1000, 256)[1]!;
    expect(eulerTimestep(stage, 0)).toBe(175);
    expect(eulerTimestep(stage, 0.999)).toBeCloseTo(stage.timestepLast, 9);
    expect(dopri5Timestep(stage, 1)).toBeCloseTo(stage.timestepLast, 9);
    expect(dopri5Timestep(stage, 0.5)).toBeCloseTo((stage.timestepFirst + stage.timestepLast) / 2, 9);
  });

  it("accepts a manifest whose stages match and names the field of one that does not", () => {
    const manifest = exampleManifest();
    expect(scheduleFor(manifest)).toHaveLength(manifest.scheduler.num_stages);
    const edited = exampleManifest();
    edited.stages[2]!.timestep_first += 1;
    expect(() => scheduleFor(edited)).toThrow(/stages\[2\]\.timestep_first is 427, but the scheduler computes 426/);
  });
});
