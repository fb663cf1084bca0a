import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, OperationOutcome } from '@medplum/fhirtypes';
import type { ResourceRepository } from '../store/resource.repository.js';
import type { ResourceStore } from '../store/resource.store.js';
import type { ConditionalService, Criteria } from './conditional.service.js';
import type { FhirRequest, FhirResponse, HttpMethod } from './fhir-types.js';
import { FhirError } from './outcomes.js';
import type { RequestContext } from './request-context.js';
import type { AnyResource } from './resource-json.js';

export interface EntryHandler {
  handle(ctx: RequestContext, req: FhirRequest, repo?: ResourceRepository): Promise<FhirResponse>;
}

/** R4 http.html#trules: DELETE, then POST, then PUT/PATCH, then GET/HEAD. */
const ORDER: Record<HttpMethod, number> = { DELETE: 0, POST: 1, PUT: 2, PATCH: 2, GET: 3, HEAD: 3 };
const METHODS = new Set<string>(Object.keys(ORDER));
const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  304: 'Not Modified',
};

interface ParsedEntry {
  index: number;
  method: HttpMethod;
  url: string;
  fullUrl?: string;
  resource?: AnyResource;
  ifMatch?: string;
  ifNoneMatch?: string;
  ifNoneExist?: string;
}

/**
 * batch and transaction Bundles (https://hl7.org/fhir/R4/http.html#transaction). A transaction runs every
 * entry in one database transaction: all succeed or nothing is written. urn:uuid fullUrls of created
 * resources are given server ids before any entry runs, and every reference to them is rewritten.
 */
export class BundleService {
  private handler?: EntryHandler;

  /** keyScopeOf: the data-key scope a resource with that id is stored under. */
  constructor(
    private readonly store: ResourceStore,
    private readonly keyScopeOf: (resource: AnyResource, id: string) => string,
    /** Awaited before a transaction opens: whatever must not be loaded from inside it (search keys). */
    private readonly beforeTransaction: () => Promise<void>,
    private readonly conditionals: ConditionalService,
  ) {}

  attach(handler: EntryHandler): void {
    this.handler = handler;
  }

  async process(ctx: RequestContext, body: unknown, prefer: string | undefined): Promise<Bundle> {
    const bundle = body as Bundle | undefined;
    if (bundle?.resourceType !== 'Bundle') {
      throw new FhirError('bad-request', 'POST to the base URL takes a batch or transaction Bundle', {
        expression: ['resourceType'],
      });
    }
    if (bundle.type !== 'batch' && bundle.type !== 'transaction') {
      throw new FhirError('bad-request', 'Bundle.type must be batch or transaction', {
        expression: ['Bundle.type'],
      });
    }
    const entries = (bundle.entry ?? []).map((e, i) => parseEntry(e, i));
    return bundle.type === 'transaction'
      ? this.transaction(ctx, entries, prefer)
      : this.batch(ctx, entries, prefer);
  }

  private async transaction(
    ctx: RequestContext,
    entries: ParsedEntry[],
    prefer: string | undefined,
  ): Promise<Bundle> {
    const fullUrls = new Set<string>();
    for (const e of entries) {
      if (e.fullUrl && fullUrls.has(e.fullUrl)) {
        throw new FhirError('bad-request', `entry ${e.index}: fullUrl is used by another entry`, {
          expression: [`Bundle.entry[${e.index}].fullUrl`],
        });
      }
      if (e.fullUrl) fullUrls.add(e.fullUrl);
    }
    // R4 http.html#trules: if the resources acted on by DELETE, POST and PUT/PATCH overlap, the
    // transaction fails; the clash is a conflict between entries, hence 409.
    const targets = new Set<string>();
    for (const e of entries) {
      if (e.method !== 'DELETE' && e.method !== 'PUT' && e.method !== 'PATCH') continue;
      // A conditional entry ("Patient?identifier=...") is told apart by its criteria.
      const target = (isOnType(e.url) ? e.url : e.url.split('?')[0]!).replace(/^\/+/, '');
      if (targets.has(target)) {
        throw new FhirError(
          'conflict',
          `entry ${e.index}: another entry of the transaction acts on ${target}`,
          {
            expression: [`Bundle.entry[${e.index}].request.url`],
          },
        );
      }
      targets.add(target);
    }
    const ids = assignIds(entries);
    const ordered = [...entries].sort((x, y) => ORDER[x.method] - ORDER[y.method] || x.index - y.index);
    await this.beforeTransaction();
    // Conditional creates (request.ifNoneExist) may turn out to be existing resources, so the references to
    // their fullUrls are settled only inside the transaction.
    const conditionalCreates: { entry: ParsedEntry; criteria: Criteria }[] = [];
    const conditionalEdits: { entry: ParsedEntry; criteria: Criteria }[] = [];
    // Every conditional entry's criteria are locked up front, in one order, so two transactions with the
    // same criteria wait for each other instead of deadlocking.
    const lockKeys = new Set<string>();
    for (const e of entries) {
      const type = e.url.split('?')[0]!.replace(/^\/+/, '');
      if (e.method === 'POST' && e.ifNoneExist !== undefined) {
        const criteria = await atEntry(e, () =>
          this.conditionals.criteria(type, e.ifNoneExist!, 'If-None-Exist'),
        );
        conditionalCreates.push({ entry: e, criteria });
        lockKeys.add(criteria.key);
      } else if (e.method !== 'POST' && e.method !== 'GET' && e.method !== 'HEAD' && isOnType(e.url)) {
        const what = `conditional ${e.method === 'PUT' ? 'update' : e.method === 'PATCH' ? 'patch' : 'delete'}`;
        const criteria = await atEntry(e, () => this.conditionals.criteria(type, e.url, what));
        conditionalEdits.push({ entry: e, criteria });
        lockKeys.add(criteria.key);
      }
    }
    const settled = new Map(ids.map);
    for (const { entry } of conditionalCreates) if (entry.fullUrl) settled.delete(entry.fullUrl);
    // Data keys for every resource the transaction writes are made ready before it opens, except a key whose
    // scope is a conditional create's own tentative id (see ConditionalService.keyScopes).
    const scopes: string[] = [];
    for (const e of entries) {
      if (!e.resource) continue;
      const id =
        e.method === 'POST'
          ? ids.byIndex.get(e.index)
          : e.method === 'PUT' && !isOnType(e.url)
            ? e.url.split('?')[0]!.split('/')[1]
            : undefined;
      if (!id) continue;
      const scope = this.keyScopeOf(rewriteReferences(e.resource, settled), id);
      if (e.ifNoneExist === undefined || scope !== `patient:${id}`) scopes.push(scope);
    }
    const responses = await this.store.write(async (repo) => {
      for (const key of [...lockKeys].sort()) await repo.lockConditional(key);
      await this.refuseResolvedOverlap(ctx, repo, entries, conditionalEdits);
      const out = new Array<BundleEntry>(entries.length);
      const map = new Map(ids.map);
      let expected: Map<number, string> | undefined;
      for (const e of ordered) {
        if (e.method !== 'DELETE' && !expected) {
          // After the deletes and before anything else (R4 http.html#trules), decide each conditional create.
          expected = await this.settleConditionalCreates(ctx, repo, conditionalCreates, ids.byIndex, map);
        }
        await atEntry(e, async () => {
          const res = await this.run(ctx, e, prefer, repo, ids.byIndex.get(e.index), map);
          const want = expected?.get(e.index);
          if (want !== undefined && idFromLocation(res.headers.Location) !== want) {
            throw new FhirError(
              'conflict',
              'the If-None-Exist criteria match a resource written by another entry of the transaction',
            );
          }
          out[e.index] = toResponseEntry(e, res);
        });
      }
      return out;
    }, scopes);
    return { resourceType: 'Bundle', id: randomUUID(), type: 'transaction-response', entry: responses };
  }

  /**
   * R4 http.html#trules: "If any resource identities (including resolved identities from conditional
   * update/delete) overlap in steps 1-3, then the transaction SHALL fail". The literal targets were
   * compared before the transaction; here each conditional update, patch or delete that matches one
   * resource (none creates or deletes nothing, several is the entry's own 412) is compared with them and
   * with each other, under the criteria's locks.
   */
  private async refuseResolvedOverlap(
    ctx: RequestContext,
    repo: ResourceRepository,
    entries: ParsedEntry[],
    edits: { entry: ParsedEntry; criteria: Criteria }[],
  ): Promise<void> {
    if (edits.length === 0) return;
    const acted = new Map<string, number>();
    for (const e of entries) {
      if ((e.method === 'DELETE' || e.method === 'PUT' || e.method === 'PATCH') && !isOnType(e.url))
        acted.set(e.url.split('?')[0]!.replace(/^\/+/, ''), e.index);
    }
    for (const { entry, criteria } of edits) {
      const found = await atEntry(entry, () => this.conditionals.match(ctx, repo, criteria));
      if (found.length !== 1) continue;
      const target = `${criteria.resourceType}/${found[0]}`;
      const other = acted.get(target);
      if (other !== undefined) {
        throw new FhirError(
          'conflict',
          `entry ${entry.index}: its conditional URL resolves to the resource entry ${other} also acts on`,
          { expression: [`Bundle.entry[${entry.index}].request.url`] },
        );
      }
      acted.set(target, entry.index);
    }
  }

  /**
   * Which id each conditional create of a transaction ends with: the single existing match, or the id
   * assigned to it. References to its fullUrl are rewritten to that id. Two entries with the same
   * criteria are one resource: the second matches what the first creates. Several matches are left for the
   * entry itself to refuse (412). The locks taken here hold until the transaction ends.
   */
  private async settleConditionalCreates(
    ctx: RequestContext,
    repo: ResourceRepository,
    creates: { entry: ParsedEntry; criteria: Criteria }[],
    assigned: Map<number, string>,
    map: Map<string, string>,
  ): Promise<Map<number, string>> {
    const expected = new Map<number, string>();
    const byCriteria = new Map<string, string>();
    for (const { entry: e, criteria } of creates) {
      const earlier = byCriteria.get(criteria.key);
      const found = earlier
        ? [earlier]
        : await atEntry(e, () => this.conditionals.match(ctx, repo, criteria));
      if (found.length > 1) continue;
      const id = found[0] ?? assigned.get(e.index)!;
      byCriteria.set(criteria.key, id);
      expected.set(e.index, id);
      if (e.fullUrl && map.has(e.fullUrl)) map.set(e.fullUrl, `${criteria.resourceType}/${id}`);
    }
    return expected;
  }

  private async batch(
    ctx: RequestContext,
    entries: ParsedEntry[],
    prefer: string | undefined,
  ): Promise<Bundle> {
    const out = new Array<BundleEntry>(entries.length);
    for (const e of [...entries].sort((x, y) => ORDER[x.method] - ORDER[y.method] || x.index - y.index)) {
      try {
        out[e.index] = toResponseEntry(e, await this.run(ctx, e, prefer, undefined, undefined, new Map()));
      } catch (err) {
        if (!(err instanceof FhirError)) throw err;
        // Entries of a batch are independent: one failure is reported in its own entry.
        out[e.index] = { response: { status: `${err.status}`, outcome: err.outcome } };
      }
    }
    return { resourceType: 'Bundle', id: randomUUID(), type: 'batch-response', entry: out };
  }

  private async run(
    ctx: RequestContext,
    e: ParsedEntry,
    prefer: string | undefined,
    repo: ResourceRepository | undefined,
    assignedId: string | undefined,
    /** urn:uuid fullUrls of the transaction -> "Type/id". */
    urns: Map<string, string>,
  ): Promise<FhirResponse> {
    if (!this.handler) throw new Error('BundleService has no handler attached');
    const url = new URL(e.url, 'http://bundle.invalid/');
    const path = url.pathname.replace(/^\//, '');
    if (path === '' || path.startsWith('$')) {
      throw new FhirError(
        'bad-request',
        `entry ${e.index}: nested batches and operations are not allowed in a Bundle`,
      );
    }
    const query: Record<string, string[]> = {};
    for (const [k, v] of url.searchParams) (query[k] ??= []).push(v);
    // urn:uuid references first, then conditional references, searched inside the transaction so that
    // resources its earlier entries wrote are found (R4 http.html#trules).
    const resource =
      e.resource &&
      (await this.conditionals.resolveReferences(ctx, rewriteReferences(e.resource, urns), repo));
    let body: unknown = resource;
    let contentType = 'application/fhir+json';
    if (e.method === 'PATCH' && resource?.resourceType === 'Binary') {
      // A JSON Patch travels in a Binary; a FHIRPath Patch is the Parameters resource itself (R4 http.html#patch).
      const bin = resource as { contentType?: string; data?: string };
      contentType = bin.contentType ?? '';
      try {
        body = JSON.parse(Buffer.from(bin.data ?? '', 'base64').toString('utf8'));
      } catch {
        throw new FhirError('bad-request', `entry ${e.index}: the Binary does not hold a JSON Patch`);
      }
    }

    return this.handler.handle(
      ctx,
      {
        method: e.method,
        path,
        query,
        headers: {
          prefer,
          contentType,
          ifMatch: e.ifMatch,
          ifNoneMatch: e.ifNoneMatch,
          ifNoneExist: e.method === 'POST' ? e.ifNoneExist : undefined,
        },
        body,
        // A create under the id chosen for its urn:uuid, so references rewritten earlier resolve.
        ...(e.method === 'POST' && assignedId ? { assignedId } : {}),
      },
      repo,
    );
  }
}

function parseEntry(e: BundleEntry, index: number): ParsedEntry {
  const method = e.request?.method;
  const url = e.request?.url;
  if (!method || !METHODS.has(method) || !url) {
    throw new FhirError('bad-request', `entry ${index}: request.method and request.url are required`, {
      expression: [`Bundle.entry[${index}].request`],
    });
  }
  return {
    index,
    method: method,
    url,
    fullUrl: e.fullUrl,
    resource: e.resource as AnyResource | undefined,
    ifMatch: e.request?.ifMatch,
    ifNoneMatch: e.request?.ifNoneMatch,
    ifNoneExist: e.request?.ifNoneExist,
  };
}

/** "Patient?identifier=..": a conditional entry on the type, not on an instance. */
function isOnType(url: string): boolean {
  return /^\/*[A-Za-z]+\?/.test(url);
}

function idFromLocation(location: string | undefined): string | undefined {
  return location && /\/([^/]+)\/_history\/[^/]+$/.exec(location)?.[1];
}

/** Runs fn for entry e; a failure names the entry (R4 http.html#transaction-response). */
async function atEntry<T>(e: ParsedEntry, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (!(err instanceof FhirError)) throw err;
    throw new FhirError(err.kind, `entry ${e.index}: ${err.message}`, {
      headers: err.headers,
      issues: (err.outcome.issue ?? []).map((i) => ({
        ...i,
        diagnostics: `entry ${e.index}: ${i.diagnostics ?? err.message}`,
      })),
    });
  }
}

/** New server ids for POST entries whose fullUrl is a urn:uuid (or urn:oid), keyed by that urn. */
function assignIds(entries: ParsedEntry[]): { map: Map<string, string>; byIndex: Map<number, string> } {
  const map = new Map<string, string>();
  const byIndex = new Map<number, string>();
  for (const e of entries) {
    if (e.method !== 'POST' || !e.resource) continue;
    const id = randomUUID();
    byIndex.set(e.index, id);
    if (e.fullUrl?.startsWith('urn:uuid:') || e.fullUrl?.startsWith('urn:oid:')) {
      map.set(e.fullUrl, `${e.resource.resourceType}/${id}`);
    }
  }
  return { map, byIndex };
}

function rewriteReferences(resource: AnyResource, map: Map<string, string>): AnyResource {
  if (map.size === 0) return resource;
  const visit = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(visit);
    if (node === null || typeof node !== 'object') return node;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) {
      out[k] = k === 'reference' && typeof v === 'string' && map.has(v) ? map.get(v) : visit(v);
    }
    return out;
  };
  return visit(resource) as AnyResource;
}

function toResponseEntry(e: ParsedEntry, res: FhirResponse): BundleEntry {
  const body =
    res.resource ??
    (res.body instanceof Buffer ? (JSON.parse(res.body.toString('utf8')) as AnyResource) : res.body);
  const location = res.headers.Location;
  const entry: BundleEntry = {
    response: {
      status: `${res.status} ${STATUS_TEXT[res.status] ?? ''}`.trim(),
      ...(location ? { location: location.replace(/^.*?\/fhir\//, '') } : {}),
      ...(res.headers.ETag ? { etag: res.headers.ETag } : {}),
      ...(res.lastUpdated
        ? { lastModified: res.lastUpdated }
        : res.headers['Last-Modified']
          ? { lastModified: new Date(res.headers['Last-Modified']).toISOString() }
          : {}),
    },
  };
  if (body && (body as { resourceType?: string }).resourceType === 'OperationOutcome' && e.method !== 'GET') {
    entry.response!.outcome = body as OperationOutcome;
  } else if (body) {
    entry.resource = body as AnyResource;
    const r = body as AnyResource;
    if (r.id && r.resourceType) entry.fullUrl = location?.replace(/\/_history\/.*$/, '');
  }
  return entry;
}
