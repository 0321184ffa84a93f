import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import openapiTS, { astToString } from 'openapi-typescript';
import { buildApp } from '../services/api/src/app.ts';
import { loadApiConfig } from '../services/api/src/config.ts';
import { REPO } from './compiled.mjs';

// `pnpm client:generate`: writes packages/client/src/openapi.ts, the types of every path, operation
// and schema of the API, from the OpenAPI document the API serves (built here on the embedded
// model, on the Redis of REDIS_URL; `--from URL` reads a running server's instead).
// `--check` writes nothing and fails when the committed file differs from what it would write.
// test/service/client.test.ts runs the same generation on a live server.

export const CLIENT_TYPES_FILE = join(REPO, 'packages/client/src/openapi.ts');

const HEADER = `// The API's OpenAPI document as TypeScript types, written by \`pnpm client:generate\` (openapi-typescript)
// from the document the server serves. Do not edit: change the routes' schemas and regenerate.

`;

/** The file's text for `document`, exactly as it is committed. */
export async function clientTypesOf(document: object): Promise<string> {
  return HEADER + astToString(await openapiTS(document as Parameters<typeof openapiTS>[0], { alphabetize: false }));
}

async function servedDocument(from: string | undefined): Promise<object> {
  if (from !== undefined) {
    const response = await fetch(new URL('/openapi.json', from));
    if (!response.ok) throw new Error(`${from}/openapi.json answered ${response.status}`);
    return (await response.json()) as object;
  }
  const app = await buildApp(loadApiConfig({ ...process.env, LOG_LEVEL: 'silent' }), { logger: false });
  try {
    return (await app.inject('/openapi.json')).json<object>();
  } finally {
    await app.close();
  }
}

async function main(args: string[]): Promise<void> {
  const fromAt = args.indexOf('--from');
  const text = await clientTypesOf(await servedDocument(fromAt >= 0 ? args[fromAt + 1] : undefined));
  if (args.includes('--check')) {
    const committed = await readFile(CLIENT_TYPES_FILE, 'utf8').catch(() => '');
    if (committed !== text) {
      process.stderr.write('pnpm client:generate --check: packages/client/src/openapi.ts differs from the served document; run pnpm client:generate\n');
      process.exit(1);
    }
    return;
  }
  await writeFile(CLIENT_TYPES_FILE, text);
  process.stderr.write(`wrote ${CLIENT_TYPES_FILE}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`pnpm client:generate: ${(error as Error).message}\n`);
    process.exit(1);
  });
}
