#!/usr/bin/env node
// @ts-check
// The `pixelflow` command: runs the compiled CLI (packages/cli/dist/pixelflow.mjs, built by
// `pnpm install` / `pnpm build`), rebuilding it first when a source is newer, so it never runs a
// stale bundle and never compiles TypeScript at start-up. Plain JavaScript: no tsx is loaded.
import { launch } from '../../../scripts/compiled.mjs';

await launch('cli');
