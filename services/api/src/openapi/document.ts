import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import type { ModelManifest } from '@pixelflow/schemas';
import { isPublicPath } from '../auth/authenticate.ts';
import { problems, RESPONSE_HEADERS, type HeaderSchema, type ResponseDeclaration } from './responses.ts';

// The OpenAPI document at /openapi.json (and its viewer at /docs), written from the routes'
// schemas. OpenAPI 3.2, for `itemSchema`: the event stream's events are described one by one, so
// a generator sees their names and payloads. The transforms below turn the routes' response
// declarations (responses.ts) into what the document needs that the zod type provider leaves out:
// response headers, responses without a body, and the event stream's items.

type JsonSchema = Record<string, unknown>;
type TransformInput = Parameters<typeof jsonSchemaTransform>[0];

export async function registerOpenApi(app: FastifyInstance, manifest: ModelManifest): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.2.0',
      info: {
        title: 'PixelFlow Serve',
        version: '1.0.0',
        description: `Class-to-image generation with PixelFlow (model: ${manifest.name}). POST a job, then poll GET /jobs/{id} or follow GET /jobs/{id}/events. Errors are RFC 9457 problem+json; every response carries X-Request-Id.`,
        license: { name: 'Proprietary', identifier: 'LicenseRef-PixelFlow-Serve' },
      },
      servers: [{ url: '/', description: 'The server that serves this document' }],
      // With AUTH=on every operation needs a key but the public ones, which say `security: []`
      // (transformRoute). With AUTH=off the server asks for none: the document is the same.
      security: [{ [SECURITY_SCHEME]: [] }],
      components: {
        securitySchemes: {
          [SECURITY_SCHEME]: {
            type: 'http',
            scheme: 'bearer',
            description: 'An API key from `pixelflow keys create` (pfk_...), as `Authorization: Bearer <key>`; needed when the server runs with AUTH=on (docs/api-keys.md).',
          },
        },
      },
      tags: [
        { name: 'jobs', description: 'Generation jobs, their progress and their images' },
        { name: 'models', description: 'The model served' },
        { name: 'ops', description: 'Health, readiness, metrics, problem types' },
      ],
    },
    transform: transformRoute,
    transformObject: (input) => withoutUnusedSchemas(withChallenge(withSharedHeaders(withEventStreamItems(jsonSchemaTransformObject(input) as JsonSchema)))),
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}

function isDeclaration(value: unknown): value is ResponseDeclaration {
  return typeof value === 'object' && value !== null && 'content' in value && 'description' in value;
}

const SECURITY_SCHEME = 'apiKey';

const CHALLENGE = 'WWW-Authenticate';
/** 401 of a route that needs a key, with its RFC 6750 challenge (auth/authenticate.ts); the header is described once, in withChallenge. */
const UNAUTHORIZED: ResponseDeclaration = (() => {
  const declaration = problems('unauthorized')[401] as ResponseDeclaration;
  return { ...declaration, headers: { ...declaration.headers, [CHALLENGE]: { type: 'string', description: '' } } };
})();

/** The 401s' WWW-Authenticate, under components.headers like the other response headers. */
function withChallenge(document: JsonSchema): JsonSchema {
  for (const response of responsesOf(document)) {
    const headers = response['headers'] as Record<string, JsonSchema> | undefined;
    if (headers?.[CHALLENGE]) headers[CHALLENGE] = { $ref: `#/components/headers/${CHALLENGE}` };
  }
  const components = document['components'] as { headers?: JsonSchema };
  components.headers = {
    ...components.headers,
    [CHALLENGE]: {
      description: 'The RFC 6750 challenge: Bearer realm="pixelflow", with error="invalid_token" when a key was sent and is not valid (unknown, revoked or malformed)',
      required: true,
      schema: { type: 'string' },
    },
  };
  return document;
}

/** 429 of a route whose requests count against a rate (auth/rate-limit.ts); a route may declare its own 429 with more kinds. */
const RATE_LIMITED = problems('rate-limited')[429] as ResponseDeclaration;

/**
 * The route's schema with what authentication and rate limits add: its 401 and 429, or, for a public
 * route, no security requirement (public routes are not rate limited either).
 */
function withAuthentication(input: TransformInput): TransformInput {
  const schema = input.schema as (Record<string, unknown> & { response?: Record<string, unknown> }) | undefined;
  if (!schema) return input;
  if (isPublicPath(input.url)) return { ...input, schema: { ...schema, security: [] } } as TransformInput;
  return { ...input, schema: { ...schema, response: { 429: RATE_LIMITED, ...schema.response, 401: UNAUTHORIZED } } } as TransformInput;
}

function transformRoute(routeInput: TransformInput): ReturnType<typeof jsonSchemaTransform> {
  const input = withAuthentication(routeInput);
  const output = jsonSchemaTransform(input);
  const declared = (input.schema as { response?: Record<string, unknown> } | undefined)?.response;
  const responses = (output.schema as { response?: Record<string, JsonSchema> } | undefined)?.response;
  if (!declared || !responses) return output;
  for (const [status, declaration] of Object.entries(declared)) {
    if (!isDeclaration(declaration)) continue;
    let response = responses[status] as JsonSchema;
    // @fastify/swagger leaves out the content of a response whose schema is of type null.
    if (Object.keys(declaration.content).length === 0) response = { type: 'null', description: declaration.description };
    if (declaration.headers) response['headers'] = declaration.headers;
    responses[status] = response;
  }
  return output;
}

/** Every operation's responses, wherever they are in the document. */
function* responsesOf(document: JsonSchema): Generator<JsonSchema> {
  for (const path of Object.values((document['paths'] ?? {}) as Record<string, Record<string, JsonSchema>>)) {
    for (const operation of Object.values(path)) yield* Object.values((operation['responses'] ?? {}) as Record<string, JsonSchema>);
  }
}

/** The response headers described once, under components.headers, and referred to by name. */
function withSharedHeaders(document: JsonSchema): JsonSchema {
  for (const response of responsesOf(document)) {
    const headers = response['headers'] as Record<string, JsonSchema> | undefined;
    for (const name of Object.keys(headers ?? {})) {
      if (headers && Object.hasOwn(RESPONSE_HEADERS, name)) headers[name] = { $ref: `#/components/headers/${name}` };
    }
  }
  const headerComponents = Object.fromEntries(
    // Every header listed for a response is always sent with it, but those only some senders get (optional).
    Object.entries(RESPONSE_HEADERS as Record<string, HeaderSchema>).map(([name, { description, optional, ...schema }]) => [name, { description, required: optional !== true, schema }]),
  );
  const components = (document['components'] ?? {}) as JsonSchema;
  return { ...document, components: { ...components, headers: headerComponents } };
}

/**
 * Event streams described item by item (`itemSchema`), the way OpenAPI 3.2 describes sequential
 * media types, instead of as one schema for the whole body. Done on the finished document:
 * @fastify/swagger keeps a response's content only when it has a `schema`.
 */
function withEventStreamItems(document: JsonSchema): JsonSchema {
  for (const response of responsesOf(document)) {
    const content = response['content'] as Record<string, JsonSchema> | undefined;
    const stream = content?.['text/event-stream'];
    if (content && stream?.['schema']) content['text/event-stream'] = { itemSchema: sseItemSchema(stream['schema'] as JsonSchema) };
  }
  return document;
}

/**
 * The events of a stream as they are on the wire: `data` is JSON text (its schema under
 * contentSchema), and the stream opens with a `retry` field alone.
 */
function sseItemSchema(events: JsonSchema): JsonSchema {
  const variants = ((events['oneOf'] ?? events['anyOf']) as JsonSchema[] | undefined) ?? [events];
  const onWire = variants.map((variant) => {
    const properties = { ...(variant['properties'] as Record<string, JsonSchema>) };
    properties['data'] = { type: 'string', contentMediaType: 'application/json', contentSchema: properties['data'] };
    return { ...variant, properties };
  });
  const retry = {
    type: 'object',
    description: 'The first item of every stream: how long (ms) an EventSource waits before reconnecting',
    properties: { retry: { type: 'integer', minimum: 0 } },
    required: ['retry'],
    additionalProperties: false,
  };
  return { description: 'One Server-Sent Event. Comment lines (heartbeats) are not items.', oneOf: [retry, ...onWire] };
}

/**
 * The zod provider adds an input and an output variant of every registered schema; a client
 * generator would emit types for those no operation uses.
 */
function withoutUnusedSchemas(document: JsonSchema): JsonSchema {
  const components = document['components'] as { schemas?: Record<string, unknown> } | undefined;
  const schemas = components?.schemas;
  if (!schemas) return document;
  const used = new Set<string>();
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) return value.forEach(visit);
    if (value === null || typeof value !== 'object') return;
    for (const [key, child] of Object.entries(value)) {
      if (key === '$ref' && typeof child === 'string' && child.startsWith('#/components/schemas/')) {
        const name = child.slice('#/components/schemas/'.length);
        if (!used.has(name)) {
          used.add(name);
          visit(schemas[name]);
        }
      } else visit(child);
    }
  };
  visit({ ...document, components: { ...components, schemas: {} } });
  return { ...document, components: { ...components, schemas: Object.fromEntries(Object.entries(schemas).filter(([name]) => used.has(name))) } };
}
