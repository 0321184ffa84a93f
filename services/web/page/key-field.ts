import { ApiProblem, currentApiKey, useApiKey } from './api.ts';
import { storedKey, storeKey } from './api-key.ts';
import { byId } from './dom.ts';

// The API key field: hidden until the API answers 401 (AUTH=on), so with AUTH=off nothing
// changes. Save keeps the key in localStorage and retries; a refused key shows the 401's detail.

export class KeyField {
  private readonly form = byId<HTMLFormElement>('api-key-form');
  private readonly input = byId<HTMLInputElement>('api-key');
  private readonly error = byId('api-key-error');
  private saved: (() => void) | null = null;

  constructor() {
    useApiKey(storedKey());
    this.input.value = storedKey() ?? '';
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      const key = this.input.value.trim() || undefined;
      storeKey(key);
      useApiKey(key);
      this.error.textContent = '';
      this.saved?.();
    });
    byId('api-key-forget').addEventListener('click', () => {
      storeKey(undefined);
      useApiKey(undefined);
      this.input.value = '';
      this.error.textContent = '';
    });
    // Once auth is known to be on, the field stays available (to change or forget the key).
    if (currentApiKey()) this.form.hidden = false;
  }

  /** Runs `request`; while the API answers 401, shows the field and retries after each Save. */
  async authorized<T>(request: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await request();
      } catch (error) {
        if (!(error instanceof ApiProblem) || error.problem.status !== 401) throw error;
        this.form.hidden = false;
        this.error.textContent = currentApiKey() ? error.problem.detail ?? error.problem.title : '';
        if (!currentApiKey()) this.input.focus();
        await new Promise<void>((resolve) => (this.saved = resolve));
      }
    }
  }
}
