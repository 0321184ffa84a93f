// The writes that the sampler's synchronous callbacks start (progress reports, stage previews),
// made one at a time in the order they were asked for. The first that fails ends the sequence:
// later ones are not made (an event must not overtake one that was lost), and `onFailure` hears
// it at once, so that the job can stop now instead of computing on with its events unwritten.
//
// A write starts only once the model call the sampler makes next has been dispatched. The sampler
// asks for writes from inside a model call's answer, and a socket write is not free: on a small
// VM one costs this thread about half a millisecond (the kernel's loopback path and the wake-up of
// Redis on the other core). Written at once, every progress burst and stage end would hold back the
// next call by that much, with onnxruntime idle meanwhile; started after it, the write overlaps the
// call's compute instead.

/**
 * Resolves on the loop iteration after this one's immediates: the batcher dispatches the calls made
 * in reaction to an answer on an immediate (BatchingModel.scheduleDispatch), which thus goes first.
 */
export function afterNextDispatch(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}

export class SideEffects {
  private tail: Promise<void> = Promise.resolve();
  private failure: { error: unknown } | null = null;
  private readonly onFailure: (error: unknown) => void;

  constructor(onFailure: (error: unknown) => void) {
    this.onFailure = onFailure;
  }

  /** Runs `task` after the ones pushed before it, unless one of them failed. */
  push(task: () => Promise<unknown>): void {
    this.tail = this.tail.then(async () => {
      if (this.failure !== null) return;
      await afterNextDispatch();
      if (this.failure !== null) return;
      try {
        await task();
      } catch (error) {
        this.failure = { error };
        this.onFailure(error);
      }
    });
  }

  /** Resolves once every pushed task has run; rejects with the first failure. */
  async drain(): Promise<void> {
    await this.tail;
    if (this.failure !== null) throw this.failure.error;
  }
}
