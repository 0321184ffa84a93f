import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

// `pixelflow --version`: this CLI's version and what decides its numbers beside our code (the
// onnxruntime-node it runs, and Node), read from the installed packages, for bug reports.
// Read without importing onnxruntime-node, so that the answer is instant.

function packageVersion(path: string | URL): string {
  return (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version;
}

export function versionLine(): string {
  const require = createRequire(import.meta.url);
  const cli = packageVersion(new URL('../package.json', import.meta.url));
  const onnxruntime = packageVersion(require.resolve('onnxruntime-node/package.json'));
  return `pixelflow ${cli} (onnxruntime-node ${onnxruntime}, Node ${process.version})`;
}
