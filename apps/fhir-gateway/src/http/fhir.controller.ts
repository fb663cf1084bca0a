import { All, Controller, Inject, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ACCESS_VERIFIER, FHIR_ENGINE, type AccessVerifier } from '../app.providers.js';
import type { FhirEngine } from '../fhir/fhir-engine.js';
import type { FhirRequest, FhirResponse, HttpMethod } from '../fhir/fhir-types.js';
import type { RequestContext } from '../fhir/request-context.js';
import { FhirError } from '../fhir/outcomes.js';
import { serializeBody } from '../fhir/stored-json.js';

const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const PUBLIC_CONTEXT: RequestContext = {
  requestId: 'metadata',
  clientId: 'anonymous',
  scopes: {
    allows: () => false,
    assertAllows: () => {
      throw new FhirError('forbidden', 'authentication required');
    },
  },
};
const JSON_FORMATS = new Set(['json', 'application/json', 'application/fhir+json', 'application/json+fhir']);

/**
 * The thin HTTP adapter (STYLE.md rule 1): authenticate, turn the Fastify request into a FhirRequest,
 * let the engine answer, write the FhirResponse. No FHIR semantics live here.
 */
@Controller('fhir')
export class FhirController {
  constructor(
    @Inject(FHIR_ENGINE) private readonly engine: FhirEngine,
    @Inject(ACCESS_VERIFIER) private readonly auth: AccessVerifier,
  ) {}

  @All(['', '*'])
  async handle(@Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const url = new URL(req.url, 'http://gateway.invalid');
    const query: Record<string, string[]> = {};
    for (const [k, v] of url.searchParams) (query[k] ??= []).push(v);
    checkFormat(query._format?.[0], req.headers.accept);

    const path = url.pathname.replace(/^\/fhir\/?/, '');
    if (path === 'metadata' && (req.method === 'GET' || req.method === 'HEAD')) {
      // The CapabilityStatement is public so clients can discover the token endpoint (SMART App Launch).
      return this.send(
        req,
        reply,
        await this.engine.handle(PUBLIC_CONTEXT, { method: 'GET', path, query, headers: {} }),
      );
    }
    const access = await this.auth.authenticate(req.headers.authorization);
    const fhirReq: FhirRequest = {
      method: req.method as HttpMethod,
      path,
      query,
      headers: {
        ifMatch: header(req, 'if-match'),
        ifNoneMatch: header(req, 'if-none-match'),
        ifModifiedSince: header(req, 'if-modified-since'),
        ifNoneExist: header(req, 'if-none-exist'),
        prefer: header(req, 'prefer'),
        contentType: header(req, 'content-type'),
      },
      body: req.body ?? undefined,
    };
    const res = await this.engine.handle(
      { requestId: req.id, clientId: access.clientId, scopes: access.scopes, sourceAddress: req.ip },
      fhirReq,
    );
    this.send(req, reply, res);
  }

  private send(req: FastifyRequest, reply: FastifyReply, res: FhirResponse): void {
    void reply.status(res.status).headers({ ...res.headers, 'x-request-id': req.id });
    if (res.body === undefined || req.method === 'HEAD' || res.status === 304) {
      void reply.send();
      return;
    }
    void reply
      .header('content-type', FHIR_JSON)
      .send(res.body instanceof Buffer ? res.body : serializeBody(res.body));
  }
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** JSON only (R4 http.html#mime-type): _format wins over Accept. */
function checkFormat(format: string | undefined, accept: string | undefined): void {
  if (format !== undefined) {
    if (!JSON_FORMATS.has(format.split(';')[0]!.trim())) {
      throw new FhirError('not-acceptable', 'only JSON is supported (_format=json)', {
        expression: ['_format'],
      });
    }
    return;
  }
  if (accept && !/json|\*\/\*|application\/\*/.test(accept)) {
    throw new FhirError('not-acceptable', 'only JSON is supported (Accept: application/fhir+json)');
  }
}
