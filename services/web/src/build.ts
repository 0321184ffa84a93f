import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { PAGE_MANIFEST, WEB_DIST_DIR, type PageManifest } from './index.ts';

// Builds the page (page/) into one script and one stylesheet with content hashes in their names,
// and an index.html that names them, so the API can cache assets forever and the page never mixes
// an old script with a new document. Written to a temporary folder, then swapped in whole.

const PAGE_DIR = fileURLToPath(new URL('../page', import.meta.url));

export async function buildWeb(outDir: string = WEB_DIST_DIR): Promise<PageManifest> {
  const partial = `${outDir}.partial-${process.pid}`;
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { recursive: true });
  const result = await esbuild.build({
    entryPoints: { app: join(PAGE_DIR, 'main.ts'), style: join(PAGE_DIR, 'styles.css') },
    bundle: true,
    minify: true,
    sourcemap: false,
    format: 'esm',
    target: ['es2022', 'chrome110', 'firefox115', 'safari16'],
    entryNames: '[name]-[hash]',
    outdir: partial,
    metafile: true,
    logLevel: 'silent',
  });
  const outputs = Object.keys(result.metafile.outputs).map((path) => basename(path));
  const script = outputs.find((name) => name.startsWith('app-') && name.endsWith('.js'));
  const style = outputs.find((name) => name.startsWith('style-') && name.endsWith('.css'));
  if (!script || !style) throw new Error(`page build wrote ${outputs.join(', ')}, not a script and a stylesheet`);
  const manifest: PageManifest = { script, style };
  const html = (await readFile(join(PAGE_DIR, 'index.html'), 'utf8')).replace('%SCRIPT%', `/assets/${script}`).replace('%STYLE%', `/assets/${style}`);
  await writeFile(join(partial, 'index.html'), html);
  await writeFile(join(partial, PAGE_MANIFEST), `${JSON.stringify(manifest)}\n`);
  await rm(outDir, { recursive: true, force: true });
  await rename(partial, outDir);
  return manifest;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const out = process.argv[2] ?? WEB_DIST_DIR;
  try {
    const built = await buildWeb(out);
    process.stderr.write(`pixelflow web: built ${out} (${built.script}, ${built.style})\n`);
  } catch (error) {
    process.stderr.write(`pixelflow web: build failed: ${(error as Error).message}\n`);
    process.exit(1);
  }
}
