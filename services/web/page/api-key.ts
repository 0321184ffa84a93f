// The API key the page sends when the server runs with AUTH=on: typed once, kept in this
// browser's localStorage under one name, and only ever sent in the Authorization header (never in
// a URL, so it stays out of server logs and browser history).

const STORAGE_NAME = 'pixelflow.apiKey';

export function storedKey(): string | undefined {
  try {
    return localStorage.getItem(STORAGE_NAME) || undefined;
  } catch {
    return undefined; // storage disabled: the key lasts as long as the page
  }
}

export function storeKey(key: string | undefined): void {
  try {
    if (key) localStorage.setItem(STORAGE_NAME, key);
    else localStorage.removeItem(STORAGE_NAME);
  } catch {
    // storage disabled: nothing to keep
  }
}
