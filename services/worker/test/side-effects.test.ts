import { describe, expect, it } from 'vitest';
import { afterNextDispatch, SideEffects } from '../src/side-effects.ts';

describe('SideEffects', () => {
  it('runs writes one at a time in order, and drains once they are done', async () => {
    const done: number[] = [];
    const effects = new SideEffects(() => expect.unreachable());
    for (const n of [1, 2, 3]) {
      effects.push(async () => {
        await new Promise((resolve) => setTimeout(resolve, 4 - n)); // later ones are quicker
        done.push(n);
      });
    }
    await effects.drain();
    expect(done).toEqual([1, 2, 3]);
  });

  it('reports the first failure at once, makes no later write, and drains with that failure', async () => {
    const failures: unknown[] = [];
    const done: string[] = [];
    const effects = new SideEffects((error) => failures.push(error));
    const refused = new Error('WRONGTYPE');
    effects.push(async () => void done.push('progress 1'));
    effects.push(() => Promise.reject(refused));
    effects.push(async () => void done.push('progress 3'));
    await expect.poll(() => failures).toEqual([refused]);
    effects.push(async () => void done.push('stage 0'));
    await expect(effects.drain()).rejects.toBe(refused);
    expect(done).toEqual(['progress 1']);
    expect(failures).toEqual([refused]);
  });

  it('starts a write only after the model call the sampler makes next has been dispatched', async () => {
    // As in a job: an answer's continuation asks for a write, then (after more microtasks) makes its
    // next call, which the batcher dispatches on an immediate.
    const order: string[] = [];
    const effects = new SideEffects(() => expect.unreachable());
    effects.push(async () => void order.push('write'));
    for (let i = 0; i < 5; i++) await Promise.resolve();
    setImmediate(() => order.push('dispatch'));
    await effects.drain();
    expect(order).toEqual(['dispatch', 'write']);
    // The same holds for the helper itself, whenever in the microtasks the dispatch is scheduled.
    const later: string[] = [];
    const waited = afterNextDispatch().then(() => later.push('after'));
    await Promise.resolve();
    setImmediate(() => later.push('dispatch'));
    await waited;
    expect(later).toEqual(['dispatch', 'after']);
  });
});
