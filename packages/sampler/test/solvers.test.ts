import { describe, expect, it } from 'vitest';
import { dopri5Stage, eulerStage, SolverError, type VelocityField } from '../src/solvers.ts';

const DEFAULTS = { rtol: 1e-3, atol: 1e-6, maxSteps: 1000 };

describe('eulerStage', () => {
  it('takes one step per grid interval with the velocity at its start', async () => {
    const seen: number[] = [];
    const field: VelocityField = async (u, x) => {
      seen.push(u);
      return x.map(() => u + 1);
    };
    const x = await eulerStage(field, new Float32Array([0, 10]), [0, 0.25, 1]);
    expect(seen).toEqual([0, 0.25]);
    // 0 + 0.25 * 1 + 0.75 * 1.25
    expect([...x]).toEqual([1.1875, 11.1875]);
  });
});

describe('dopri5Stage', () => {
  it('solves dx/du = -(1 + u) x to within its tolerance and lands on u = 1', async () => {
    let last = 0;
    const field: VelocityField = async (u, x) => {
      last = Math.max(last, u);
      return x.map((v) => -(1 + u) * v);
    };
    const x = await dopri5Stage(field, new Float32Array([1, 2, -3]), DEFAULTS);
    const exact = Math.exp(-1.5);
    [1, 2, -3].forEach((x0, i) => expect(Math.abs((x[i] as number) - x0 * exact)).toBeLessThan(1e-3 * Math.abs(x0)));
    expect(last).toBeLessThanOrEqual(1);
  });

  it('is more accurate at a tighter tolerance', async () => {
    const field: VelocityField = async (u, x) => x.map((v) => Math.cos(5 * u) * v);
    const exact = Math.exp(Math.sin(5) / 5);
    const loose = await dopri5Stage(field, new Float32Array([1]), DEFAULTS);
    const tight = await dopri5Stage(field, new Float32Array([1]), { rtol: 1e-6, atol: 1e-9, maxSteps: 1000 });
    expect(Math.abs((tight[0] as number) - exact)).toBeLessThan(1e-5);
    expect(Math.abs((tight[0] as number) - exact)).toBeLessThanOrEqual(Math.abs((loose[0] as number) - exact));
  });

  it('stops with a clear error after its step cap', async () => {
    const field: VelocityField = async (u, x) => x.map(() => 500 * Math.cos(200 * u));
    await expect(dopri5Stage(field, new Float32Array(2), { ...DEFAULTS, maxSteps: 3 })).rejects.toThrow(
      /did not reach the end of the stage in 3 steps/,
    );
  });

  it('reports step-size underflow on a field that blows up inside the stage', async () => {
    // dx/du = x^2 from x = 2 reaches infinity at u = 0.5
    const field: VelocityField = async (_u, x) => x.map((v) => v * v);
    const error = await dopri5Stage(field, new Float32Array([2]), { ...DEFAULTS, maxSteps: 100_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SolverError);
    expect((error as Error).message).toMatch(/step size underflowed/);
  });
});
