import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

// Checks real responses against the OpenAPI document the server publishes: the status is one the
// operation lists, the media type is one of that status's, each header it lists is there and of
// its schema, and the body matches (JSON by its schema, an event stream item by item with each
// event's data by its contentSchema, a PNG by its signature). It also keeps which documented
// responses were seen, so a test can tell which ones nothing exercised.

type Json = Record<string, unknown>;

// ajv-formats is CommonJS with its function as the default export.
const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

export interface ObservedResponse {
  status: number;
  headers: Headers;
  body: Buffer;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export class OpenApiConformance {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
  private readonly validators = new WeakMap<object, ValidateFunction>();
  /** `GET /jobs/{id} 200` for each documented response a check has seen. */
  readonly seen = new Set<string>();

  private readonly document: Json;

  constructor(document: Json) {
    this.document = document;
    addFormats(this.ajv);
  }

  /** Every documented response, as `METHOD /path/{param} STATUS`. */
  documented(): string[] {
    const all: string[] = [];
    for (const [path, operations] of Object.entries(this.document['paths'] as Record<string, Record<string, Json>>)) {
      for (const [method, operation] of Object.entries(operations)) {
        for (const status of Object.keys(operation['responses'] as Json)) all.push(`${method.toUpperCase()} ${path} ${status}`);
      }
    }
    return all;
  }

  /** Reads a fetch response whole and checks it; returns what does not conform (empty when it all does). */
  async check(method: string, path: string, response: Response): Promise<string[]> {
    const body = Buffer.from(await response.arrayBuffer());
    return this.checkObserved(method, path, { status: response.status, headers: response.headers, body });
  }

  checkObserved(method: string, path: string, response: ObservedResponse): string[] {
    const operation = (this.document['paths'] as Record<string, Record<string, Json>>)[path]?.[method.toLowerCase()];
    if (!operation) return [`${method} ${path} is not in the document`];
    const declared = (operation['responses'] as Record<string, Json>)[String(response.status)];
    const where = `${method} ${path} ${response.status}`;
    if (!declared) return [`${where}: the status is not documented`];
    this.seen.add(where);
    const problems: string[] = [];
    for (const [name, header] of Object.entries((declared['headers'] ?? {}) as Record<string, Json>)) {
      const definition = this.resolve(header);
      const value = response.headers.get(name);
      if (value === null) {
        if (definition['required'] === true) problems.push(`${where}: header ${name} is missing`);
        continue;
      }
      const schema = definition['schema'] as Json;
      const parsed = schema['type'] === 'integer' && /^\d+$/.test(value) ? Number(value) : value;
      problems.push(...this.validate(schema, parsed, `${where}: header ${name}`));
    }
    const content = declared['content'] as Record<string, Json> | undefined;
    const contentType = response.headers.get('content-type');
    if (!content) {
      if (response.body.length > 0) problems.push(`${where}: documented without a body, sent ${response.body.length} bytes`);
      return problems;
    }
    const mediaType = contentType?.split(';')[0]?.trim().toLowerCase() ?? '';
    const media = content[mediaType];
    if (!media) return [...problems, `${where}: content type ${JSON.stringify(contentType)} is not one of ${Object.keys(content).join(', ')}`];
    if (media['itemSchema']) return [...problems, ...this.checkEventStream(media['itemSchema'] as Json, response.body.toString('utf8'), where)];
    if (mediaType === 'image/png') {
      if (!response.body.subarray(0, 8).equals(PNG_SIGNATURE)) problems.push(`${where}: the body is not a PNG`);
      return problems;
    }
    if (mediaType.endsWith('json')) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(response.body.toString('utf8'));
      } catch {
        return [...problems, `${where}: the body is not JSON`];
      }
      problems.push(...this.validate(media['schema'] as Json, parsed, `${where}: body`));
      if (mediaType === 'application/problem+json' && (parsed as Json)['status'] !== response.status) problems.push(`${where}: the problem's status differs from the response's`);
      return problems;
    }
    return [...problems, ...this.validate(media['schema'] as Json, response.body.toString('utf8'), `${where}: body`)];
  }

  /** Each item of the stream (fields of one event block) by itemSchema, and each event's data by its contentSchema. */
  private checkEventStream(itemSchema: Json, text: string, where: string): string[] {
    const problems: string[] = [];
    const variants = itemSchema['oneOf'] as Json[];
    for (const block of text.split('\n\n')) {
      const item: Record<string, string | number> = {};
      for (const line of block.split('\n')) {
        if (line === '' || line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        item[field] = field === 'retry' ? Number(value) : value;
      }
      if (Object.keys(item).length === 0) continue; // a heartbeat: comments only
      const label = `${where}: event ${JSON.stringify(item['event'] ?? 'retry')}`;
      const errors = this.validate(itemSchema, item, label);
      problems.push(...errors);
      if (errors.length > 0 || item['event'] === undefined) continue;
      const variant = variants.find((v) => ((v['properties'] as Json)['event'] as Json | undefined)?.['enum']?.toString() === item['event']);
      const dataSchema = ((variant?.['properties'] as Json | undefined)?.['data'] as Json | undefined)?.['contentSchema'] as Json | undefined;
      if (!dataSchema) {
        problems.push(`${label}: no contentSchema for its data`);
        continue;
      }
      problems.push(...this.validate(dataSchema, JSON.parse(String(item['data'])), `${label} data`));
    }
    return problems;
  }

  private resolve(value: Json): Json {
    const ref = value['$ref'];
    if (typeof ref !== 'string') return value;
    let target: unknown = this.document;
    for (const segment of ref.replace(/^#\//, '').split('/')) target = (target as Json)[segment.replaceAll('~1', '/').replaceAll('~0', '~')];
    return target as Json;
  }

  private validate(schema: Json, value: unknown, label: string): string[] {
    let validator = this.validators.get(schema);
    if (!validator) {
      // Compiled with the document's components beside it, so `#/components/...` refs resolve.
      validator = this.ajv.compile({ ...schema, components: this.document['components'] });
      this.validators.set(schema, validator);
    }
    if (validator(value)) return [];
    return (validator.errors ?? []).map((error) => `${label}${error.instancePath} ${error.message ?? 'is invalid'}`);
  }
}
