import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { PAGE_MANIFEST, type PageManifest } from '@pixelflow/web';
import { z } from 'zod';
import { matchesIfNoneMatch } from '../conditional-get.ts';
import type { ApiContext } from '../context.ts';
import { problem, sendProblem } from '../problems.ts';

// The web page (services/web) at `/` and its two assets, read into memory once at start-up from
// the built folder (WEB_DIR). Asset names carry a content hash, so they are cached for good; the
// document is revalidated so a rebuilt page is picked up on the next load. A page that was never
// built answers 503 with the command that builds it, and the API itself keeps working.

interface StaticFile {
  body: Buffer;
  type: string;
  etag: string;
}

// The page talks only to this origin; nothing inline, nothing from elsewhere.
const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

async function loadPage(dir: string): Promise<Map<string, StaticFile> | null> {
  let manifest: PageManifest;
  try {
    manifest = JSON.parse(await readFile(join(dir, PAGE_MANIFEST), 'utf8')) as PageManifest;
  } catch {
    return null;
  }
  const files = new Map<string, StaticFile>();
  for (const [name, type] of [
    ['index.html', 'text/html; charset=utf-8'],
    [manifest.script, 'text/javascript; charset=utf-8'],
    [manifest.style, 'text/css; charset=utf-8'],
  ] as const) {
    const body = await readFile(join(dir, name));
    files.set(name, { body, type, etag: `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"` });
  }
  return files;
}

function send(reply: FastifyReply, file: StaticFile, ifNoneMatch: string | string[] | undefined, cacheControl: string): FastifyReply {
  reply.header('etag', file.etag).header('cache-control', cacheControl).header('x-content-type-options', 'nosniff');
  if (matchesIfNoneMatch(ifNoneMatch, file.etag)) return reply.code(304).send();
  return reply.type(file.type).send(file.body);
}

export function webRoutes(ctx: ApiContext) {
  return async function (app: FastifyInstance): Promise<void> {
    const page = await loadPage(ctx.config.WEB_DIR);
    if (!page) app.log.warn(`the web page is not built in ${ctx.config.WEB_DIR}; run \`pnpm build:web\` (pnpm start does it)`);
    const api = app.withTypeProvider<ZodTypeProvider>();

    api.get('/', { schema: { hide: true } }, async (request, reply) => {
      const index = page?.get('index.html');
      // The folder is the operator's business (the warning above names it), not the caller's.
      if (!index) return sendProblem(reply, problem('service-unavailable', 'the web page is not built; run `pnpm build:web` and restart the API (pnpm start does both)', { instance: '/' }));
      reply.header('content-security-policy', CSP).header('referrer-policy', 'same-origin');
      return send(reply, index, request.headers['if-none-match'], 'no-cache');
    });

    api.get('/assets/:file', { schema: { hide: true, params: z.object({ file: z.string().max(128) }) } }, async (request, reply) => {
      const file = request.params.file === 'index.html' ? undefined : page?.get(request.params.file);
      if (!file) return sendProblem(reply, problem('not-found', `no asset ${JSON.stringify(request.params.file)}`, { instance: request.url }));
      return send(reply, file, request.headers['if-none-match'], 'public, max-age=31536000, immutable');
    });
  };
}
