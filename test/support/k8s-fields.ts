import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { REPO } from '../../scripts/compiled.mjs';
import type { KubeObject } from './kubectl.ts';

// Unknown fields in Kubernetes objects. The Kubernetes schemas (and so kubernetes-models' validate())
// accept any extra field, and an API server drops or merely warns about one: a misspelt
// `livenesProbe` would deploy a pod with no liveness probe. kubernetes-models also ships each
// kind's TypeScript interface, and TypeScript rejects an object literal with a property its type
// does not declare: each object is written as a literal `satisfies` its interface and compiled.

/** The module and interface kubernetes-models declares an object's kind in. */
function typeOf(object: KubeObject): { module: string; name: string } {
  const [group, version] = object.apiVersion.includes('/') ? object.apiVersion.split('/') : ['', object.apiVersion];
  const module =
    group === 'monitoring.coreos.com'
      ? `@kubernetes-models/prometheus-operator/${group}/${version}/${object.kind}`
      : `kubernetes-models/${group === '' ? '' : `${group}/`}${version}/${object.kind}`;
  return { module, name: `I${object.kind}` };
}

/** An object and what to call it in an error (e.g. which overlay rendered it). */
export interface LabelledObject {
  label: string;
  object: KubeObject;
}

/** TypeScript's complaints about `entries`, one line each, naming the object; empty when none. */
export function unknownFieldErrors(entries: LabelledObject[]): string[] {
  // Under node_modules, so that the imports resolve to the repository's packages.
  const dir = join(REPO, 'node_modules', '.cache', `pixelflow-k8s-fields-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'objects.ts');
  const imports = new Map<string, string>();
  const lines = entries.map(({ object }, index) => {
    const { module, name } = typeOf(object);
    const alias = `T${imports.size}`;
    if (!imports.has(module)) imports.set(module, `import type { ${name} as ${alias} } from '${module}';`);
    const type = /as (T\d+)/.exec(imports.get(module) ?? '')?.[1];
    return `export const o${index} = ${JSON.stringify(object)} satisfies ${type};`;
  });
  writeFileSync(file, [...imports.values(), ...lines].join('\n'));
  try {
    const program = ts.createProgram([file], {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      types: [],
    });
    return ts.getPreEmitDiagnostics(program).map((diagnostic) => {
      const line = diagnostic.file && diagnostic.start !== undefined ? diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start).line : -1;
      const entry = entries[line - imports.size];
      const where = entry ? `${entry.label}: ${entry.object.kind} ${entry.object.metadata.name}` : 'objects.ts';
      return `${where}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, ' ')}`;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
