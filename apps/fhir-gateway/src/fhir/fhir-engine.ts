import type { Bundle } from '@medplum/fhirtypes';
import type { ResourceRepository } from '../store/resource.repository.js';
import type { BundleService } from './bundle.service.js';
import type { CapabilityService } from './capability.service.js';
import type { ConditionalService } from './conditional.service.js';
import type { R4Definitions } from './definitions.js';
import type { FhirRequest, FhirResponse } from './fhir-types.js';
import type { HistoryService } from './history.service.js';
import { FhirError, informational } from './outcomes.js';
import type { RequestContext } from './request-context.js';
import type { ResourceService } from './resource.service.js';
import type { SearchService } from '../search/search.service.js';
import { preferReturn, readResponse, versionHeaders, writeResponse } from './responses.js';
import { parseSubset, subsetSearchset } from './subset.js';
import { validationIssues } from './validator.js';

/**
 * The FHIR REST router: maps a transport-free request onto an interaction (R4 http.html) and returns a
 * transport-free response. The HTTP controller and the Bundle processor both call it; the latter passes
 * a repository bound to its transaction.
 */
export class FhirEngine {
  constructor(
    private readonly defs: R4Definitions,
    private readonly resources: ResourceService,
    private readonly searches: SearchService,
    private readonly histories: HistoryService,
    private readonly bundles: BundleService,
    private readonly capabilities: CapabilityService,
    private readonly baseUrl: string,
    private readonly conditionals: ConditionalService,
  ) {}

  async handle(ctx: RequestContext, req: FhirRequest, repo?: ResourceRepository): Promise<FhirResponse> {
    const parts = req.path
      .split('/')
      .filter((p) => p.length > 0)
      .map(decodeURIComponent);
    const [a, b, c, d] = parts;
    const m = req.method === 'HEAD' ? 'GET' : req.method;
    if (parts.length > 4) throw new FhirError('not-found', 'no such FHIR endpoint');

    if (a === undefined) {
      if (m === 'POST')
        return {
          status: 200,
          headers: {},
          body: await this.bundles.process(ctx, req.body, req.headers.prefer),
        };
      // System-level search (R4 http.html#search): GET [base]?_type=...
      if (m === 'GET')
        return this.searchset(req.query, () => this.searches.searchSystem(ctx, req.query, repo));
      return notAllowed(['GET', 'POST']);
    }
    if (a === 'metadata' && parts.length === 1) {
      return m === 'GET'
        ? { status: 200, headers: {}, body: this.capabilities.statement() }
        : notAllowed(['GET']);
    }
    if (a === '_history' && parts.length === 1) {
      return m === 'GET' ? json(await this.histories.history(ctx, {}, req.query, repo)) : notAllowed(['GET']);
    }
    this.resources.assertType(a);
    const type = a;

    if (b === undefined) {
      switch (m) {
        case 'POST':
          if (req.headers.ifNoneExist !== undefined) return this.conditionalCreate(ctx, type, req, repo);
          return writeResponse(
            this.baseUrl,
            await this.resources.create(ctx, type, req.body, repo, req.assignedId),
            preferReturn(req.headers.prefer),
          );
        case 'GET':
          return this.searchset(req.query, () =>
            this.searches.search(
              ctx,
              type,
              req.query,
              strictHandling(req.headers.prefer),
              repo ? { repo } : {},
            ),
          );
        // On the type, PUT, PATCH and DELETE are the conditional interactions (R4 http.html#cond-update,
        // #patch, #3.1.0.7.1); their search parameters are the URL's query.
        case 'PUT': {
          const w = await this.conditionals.update(ctx, type, req.query, req.body, req.headers.ifMatch, repo);
          return writeResponse(this.baseUrl, w, preferReturn(req.headers.prefer));
        }
        case 'PATCH': {
          const w = await this.conditionals.patch(
            ctx,
            type,
            req.query,
            req.body,
            req.headers.contentType,
            req.headers.ifMatch,
            repo,
          );
          return writeResponse(this.baseUrl, w, preferReturn(req.headers.prefer));
        }
        case 'DELETE': {
          const d = await this.conditionals.delete(ctx, type, req.query, req.headers.ifMatch, repo);
          const v = d.version;
          return {
            status: 200,
            headers: v ? { ETag: `W/"${v.versionId}"` } : {},
            body: informational(
              v
                ? `deleted the ${type} that matched the criteria`
                : d.matched
                  ? `the ${type} that matched the criteria was already deleted`
                  : `no ${type} matched the criteria; nothing was deleted`,
            ),
          };
        }
      }
    }
    if (b === '$validate' && parts.length === 2) {
      return m === 'POST' ? this.validate(type, req.body) : notAllowed(['POST']);
    }
    if (b === '_history' && parts.length === 2) {
      return m === 'GET'
        ? json(await this.histories.history(ctx, { type }, req.query, repo))
        : notAllowed(['GET']);
    }
    if (b === '_search' && parts.length === 2) {
      if (m !== 'POST') return notAllowed(['POST']);
      // POST [type]/_search: parameters in the form body and the URL together (R4 http.html#search).
      const query: Record<string, string[]> = { ...req.query };
      for (const [k, v] of Object.entries((req.body ?? {}) as Record<string, string | string[]>)) {
        (query[k] ??= []).push(...(Array.isArray(v) ? v : [v]));
      }
      return this.searchset(query, () =>
        this.searches.search(ctx, type, query, strictHandling(req.headers.prefer), repo ? { repo } : {}),
      );
    }
    const id = b;
    if (c === undefined) {
      switch (m) {
        case 'GET': {
          const v = await this.resources.read(ctx, type, id, repo);
          const cached = notModified(req, v.versionId, v.lastUpdated);
          return cached ?? readResponse(this.defs, v, parseSubset(req.query));
        }
        case 'PUT': {
          const w = await this.resources.update(ctx, type, id, req.body, req.headers.ifMatch, repo);
          return writeResponse(this.baseUrl, w, preferReturn(req.headers.prefer));
        }
        case 'PATCH': {
          const w = await this.resources.patch(
            ctx,
            type,
            id,
            req.body,
            req.headers.contentType,
            req.headers.ifMatch,
            repo,
          );
          return writeResponse(this.baseUrl, w, preferReturn(req.headers.prefer));
        }
        case 'DELETE': {
          const v = await this.resources.delete(ctx, type, id, req.headers.ifMatch, repo);
          return {
            status: 200,
            headers: v ? { ETag: `W/"${v.versionId}"` } : {},
            body: {
              resourceType: 'OperationOutcome',
              issue: [
                {
                  severity: 'information',
                  code: 'informational',
                  diagnostics: v ? `deleted the ${type}` : `the ${type} did not exist or was already deleted`,
                },
              ],
            },
          };
        }
        case 'POST':
          return notAllowed(['GET', 'PUT', 'PATCH', 'DELETE']);
      }
    }
    if (c === '$validate' && d === undefined) {
      return m === 'POST' ? this.validate(type, req.body) : notAllowed(['POST']);
    }
    if (c !== undefined && d === undefined && m === 'GET' && this.defs.resourceTypes.has(c)) {
      // Compartment search, GET [compartment type]/[id]/[type] (R4 http.html#search, compartmentdefinition.html).
      return this.searchset(req.query, () =>
        this.searches.search(ctx, c, req.query, strictHandling(req.headers.prefer), {
          compartment: { type, id },
          ...(repo ? { repo } : {}),
        }),
      );
    }
    if (c === '_history') {
      if (m !== 'GET') return notAllowed(['GET']);
      if (d === undefined) return json(await this.histories.history(ctx, { type, id }, req.query, repo));
      const v = await this.resources.vread(ctx, type, id, d, repo);
      return readResponse(this.defs, v, parseSubset(req.query));
    }
    throw new FhirError('not-found', 'no such FHIR endpoint');
  }

  /** A searchset response, with _summary and _elements applied (checked before the search runs). */
  private async searchset(
    query: Record<string, string[]>,
    run: () => Promise<Bundle>,
  ): Promise<FhirResponse> {
    const subset = parseSubset(query);
    return json(subsetSearchset(this.defs, await run(), subset));
  }

  /**
   * Conditional create (R4 http.html#ccreate). A match answers 200 with the existing resource, its ETag and
   * Location, exactly as a read of it would, and writes nothing.
   */
  private async conditionalCreate(
    ctx: RequestContext,
    type: string,
    req: FhirRequest,
    repo: ResourceRepository | undefined,
  ): Promise<FhirResponse> {
    const w = await this.conditionals.create(
      ctx,
      type,
      req.body,
      req.headers.ifNoneExist!,
      repo,
      req.assignedId,
    );
    const prefer = preferReturn(req.headers.prefer);
    const res = writeResponse(this.baseUrl, w, prefer);
    if (w.matched && prefer === 'OperationOutcome') {
      res.body = informational(
        `${type}/${w.version.id} matched the If-None-Exist criteria; nothing was created`,
      );
    }
    return res;
  }

  /** $validate (R4 resource-operation-validate): 200 with the issues whether or not the resource is valid. */
  private validate(type: string, body: unknown): FhirResponse {
    let resource = body;
    const params = body as
      { resourceType?: string; parameter?: { name?: string; resource?: unknown }[] } | undefined;
    if (params?.resourceType === 'Parameters' && type !== 'Parameters') {
      resource = params.parameter?.find((p) => p.name === 'resource')?.resource;
    }
    if ((resource as { resourceType?: unknown } | undefined)?.resourceType !== type) {
      throw new FhirError('bad-request', `$validate expects a ${type} resource`, {
        expression: ['resourceType'],
      });
    }
    const issues = validationIssues(this.defs, resource);
    return {
      status: 200,
      headers: {},
      body: {
        resourceType: 'OperationOutcome',
        issue:
          issues.length > 0
            ? issues
            : [{ severity: 'information', code: 'informational', diagnostics: 'no issues found' }],
      },
    };
  }
}

/** Prefer: handling=strict makes unknown search parameters an error (R4 search.html#errors). */
function strictHandling(prefer: string | undefined): boolean {
  return /(?:^|[,;\s])handling\s*=\s*strict/.test(prefer ?? '');
}

function json(body: object): FhirResponse {
  return { status: 200, headers: {}, body };
}

function notAllowed(allow: string[]): never {
  throw new FhirError('method-not-allowed', 'this interaction is not supported on this endpoint', {
    headers: { Allow: allow.join(', ') },
  });
}

/** Conditional read (R4 http.html#cread): If-None-Match / If-Modified-Since. */
function notModified(req: FhirRequest, versionId: number, lastUpdated: string): FhirResponse | undefined {
  const inm = req.headers.ifNoneMatch;
  if (inm !== undefined) {
    const tags = inm.split(',').map((t) => t.trim().replace(/^W\//, '').replace(/"/g, ''));
    if (tags.includes(String(versionId)) || tags.includes('*'))
      return { status: 304, headers: versionHeaders({ versionId, lastUpdated }) };
    return undefined;
  }
  const ims = req.headers.ifModifiedSince;
  if (ims !== undefined) {
    const since = Date.parse(ims);
    // HTTP dates have second precision.
    if (!Number.isNaN(since) && Math.floor(Date.parse(lastUpdated) / 1000) * 1000 <= since) {
      return { status: 304, headers: versionHeaders({ versionId, lastUpdated }) };
    }
  }
  return undefined;
}
