import { fileURLToPath } from 'node:url';

/** Where `pnpm build:web` (and `pnpm start`) put the built page; the API serves it from here by default. */
export const WEB_DIST_DIR = fileURLToPath(new URL('../dist', import.meta.url));

/** Files of a built page: the API serves exactly these. */
export const PAGE_MANIFEST = 'page.json';

export interface PageManifest {
  /** Asset file names (content-hashed) by role. */
  script: string;
  style: string;
}
