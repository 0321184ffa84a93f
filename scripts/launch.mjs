#!/usr/bin/env node
// @ts-check
// Runs one compiled entry point, rebuilding it first when a source is newer (compiled.mjs):
//
//   node scripts/launch.mjs api|worker|cli [args...]
//
// What the services' own `pnpm start` scripts run; the CLI has its own launcher
// (packages/cli/bin/pixelflow.mjs). The bundle sees the arguments after the name, as if run directly.
import { BUNDLES, launch } from './compiled.mjs';

const name = BUNDLES.find((b) => b.name === process.argv[2])?.name;
if (name === undefined) {
  process.stderr.write(`usage: node scripts/launch.mjs ${BUNDLES.map((b) => b.name).join('|')} [args...]\n`);
  process.exit(2);
}
process.argv.splice(2, 1);
await launch(name);
