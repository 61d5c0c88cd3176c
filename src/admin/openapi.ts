/**
 * The OpenAPI 3.0 description of the admin API, built from the same route table that serves requests, so
 * the two cannot drift apart.
 */
import { PGSHARD_VERSION } from '../version.js';

export interface RouteDoc {
  /** With `{name}` for path parameters. */
  path: string;
  /** Default: get. */
  method?: 'get' | 'post' | 'delete';
  pathParams?: { name: string; description: string }[];
  /** A JSON request body: field → type. */
  body?: Record<string, 'string' | 'integer'>;
  summary: string;
  /** Query parameters. */
  params?: { name: string; description: string; required: boolean }[];
  /** Responses besides 200 (and the 401/403 of access control), by status. */
  responses?: Record<string, string>;
  /** Content type of the 200 answer; JSON when unset. */
  produces?: string;
  /** Answered without a token, to anyone (only /health). */
  public?: boolean;
}

const errorSchema = {
  type: 'object',
  required: ['error'],
  properties: { error: { type: 'string', description: 'What went wrong and what to do about it.' } },
};

export function openApiDocument(routes: readonly RouteDoc[], opts: { tokenConfigured: boolean }): object {
  const errorResponse = (description: string) => ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });
  const paths: Record<string, object> = {};
  for (const r of routes) {
    const ok = { content: { [r.produces ?? 'application/json']: { schema: r.produces ? { type: 'string' } : { type: 'object' } } } };
    const responses: Record<string, object> = r.responses?.['202'] ? {} : { '200': { description: 'OK', ...ok } };
    for (const [status, description] of Object.entries(r.responses ?? {})) responses[status] = status === '202' ? { description, ...ok } : errorResponse(description);
    if (!r.public) {
      responses['401'] = errorResponse('admin.token is set and the request has no or a wrong "Authorization: Bearer" header.');
      responses['403'] = errorResponse('admin.token is not set and the client is not on a loopback address.');
    }
    const method = r.method ?? 'get';
    const parameters = [
      ...(r.pathParams ?? []).map((p) => ({ name: p.name, in: 'path', required: true, description: p.description, schema: { type: 'string' } })),
      ...(r.params ?? []).map((p) => ({ name: p.name, in: 'query', required: p.required, description: p.description, schema: { type: 'string' } })),
    ];
    paths[r.path] = {
      ...paths[r.path],
      [method]: {
        summary: r.summary,
        operationId: `${method === 'get' ? '' : `${method}_`}${r.path.replace(/[^A-Za-z0-9]+/g, '_').replace(/^_|_$/g, '') || 'root'}`,
        ...(parameters.length ? { parameters } : {}),
        ...(r.body
          ? {
              requestBody: {
                required: true,
                content: { 'application/json': { schema: { type: 'object', properties: Object.fromEntries(Object.entries(r.body).map(([k, v]) => [k, { type: v }])) } } },
              },
            }
          : {}),
        ...(r.public ? { security: [] } : {}),
        responses,
      },
    };
  }
  return {
    openapi: '3.0.3',
    info: {
      title: 'pgshard admin API',
      version: PGSHARD_VERSION,
      description: opts.tokenConfigured
        ? 'Every route but /health needs "Authorization: Bearer <admin.token>".'
        : 'admin.token is not set: only loopback clients are answered.',
    },
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'admin.token from the configuration' } },
      schemas: { Error: errorSchema },
    },
    security: [{ bearer: [] }],
  };
}
