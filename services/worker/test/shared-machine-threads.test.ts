import { describe, expect, it } from 'vitest';
import { ortThreadsOnSharedMachine, sharedMachineOrtThreads } from '../src/config.ts';

// What `pnpm start` and the service benchmarks give the worker when it shares the machine.
describe('onnxruntime threads on a shared machine', () => {
  it('leaves one CPU to the API and Redis, and never goes below one thread', () => {
    expect(sharedMachineOrtThreads(8)).toBe(7);
    expect(sharedMachineOrtThreads(2)).toBe(1);
    expect(sharedMachineOrtThreads(1)).toBe(1);
  });

  it('keeps an ORT_THREADS the user set, and fills it in otherwise', () => {
    expect(ortThreadsOnSharedMachine({ ORT_THREADS: '3' })).toBe('3');
    expect(ortThreadsOnSharedMachine({})).toBe(String(sharedMachineOrtThreads()));
  });
});
