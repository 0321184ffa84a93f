import { type ModelDir } from '@pixelflow/formats';
import { defaultSessionCacheDir, OnnxModel, OnnxModelError, type OnnxModelOptions } from '@pixelflow/onnx';
import { CliError, UsageError } from './errors.ts';

// Ctrl-C and SIGTERM for commands that run a model: the first signal aborts the work in progress
// (the sampler checks its AbortSignal before every model call) so that the command can release
// its onnxruntime session before exiting; a second one exits at once.

/**
 * Aborts `controller` on Ctrl-C (exit 130) or SIGTERM (143) with the reason
 * `interrupted by SIGINT; <consequence>`; a second signal exits at once.
 * Returns the function that stops listening.
 */
export function abortOnSignals(controller: AbortController, command: string, consequence: string): () => void {
  const handlers = (['SIGINT', 'SIGTERM'] as const).map((signal) => {
    const status = signal === 'SIGINT' ? 130 : 143;
    const handler = (): void => {
      if (controller.signal.aborted) process.exit(status);
      controller.abort(new CliError(`interrupted by ${signal}; ${consequence}`, status, { command }));
    };
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  return () => {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  };
}

/**
 * PIXELFLOW_SESSION_CACHE: unset or empty = defaultSessionCacheDir(), `off` = no cache, anything
 * else = that folder.
 */
export function sessionCacheDirFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env['PIXELFLOW_SESSION_CACHE'];
  if (value === undefined || value === '') return defaultSessionCacheDir(env);
  return value === 'off' ? undefined : value;
}

/**
 * Loads the model in its worker thread; resolves with it, or rejects with the abort reason as
 * soon as the signal fires. A model that does not load is bad input: a one-line UsageError.
 */
export async function loadOnnxModel(model: ModelDir, options: OnnxModelOptions, signal: AbortSignal, command: string): Promise<OnnxModel> {
  // A one-shot command pays a CPU session's weight prepacking on every run unless it is saved.
  const sessionCacheDir = sessionCacheDirFromEnv();
  const loading = OnnxModel.load(model, { ...options, ...(sessionCacheDir !== undefined && { sessionCacheDir }) }).then((loaded) => {
    if (loaded.sessionCache === 'unusable') {
      process.stderr.write(`${command}: note: ${loaded.sessionCacheProblem ?? 'the session cache is unusable'}; loaded the model without it (PIXELFLOW_SESSION_CACHE=off stops trying)\n`);
    }
    return loaded;
  });
  const aborted = new Promise<never>((_, reject) => {
    const onAbort = (): void => {
      // The session cannot stop loading; release it whenever it is done.
      loading.then((m) => m.dispose()).catch(() => {});
      reject(signal.reason as Error);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([loading, aborted]);
  } catch (error) {
    if (error instanceof OnnxModelError) throw new UsageError(error.message, { command });
    throw error;
  }
}
