import { randomUUID } from 'node:crypto';
import type { ResourceRepository, StoredVersion } from '../store/resource.repository.js';
import type { SearchIndex } from '../search/search-index.js';
import type { SearchService } from '../search/search.service.js';
import { FhirError } from './outcomes.js';
import { parsePatch } from './patch.js';
import type { RequestContext } from './request-context.js';
import { ID_PATTERN, keyScopeFor, type AnyResource } from './resource-json.js';
import type { ResourceService, WriteResult } from './resource.service.js';

/** Parameters that shape a search's answer but select nothing: criteria made only of these are empty. */
const NOT_CRITERIA = new Set([
  '_format',
  '_pretty',
  '_count',
  '_cursor',
  '_total',
  '_summary',
  '_elements',
  '_include',
  '_revinclude',
]);

/** A conditional reference inside a Bundle: "Patient?identifier=http://x|123" (R4 http.html#trules). */
const CONDITIONAL_REFERENCE = /^([A-Z][A-Za-z]+)\?(.*)$/s;

/** Search criteria of a conditional interaction, parsed and checked. */
export interface Criteria {
  resourceType: string;
  query: Record<string, string[]>;
  /** Identifies the criteria for locking and de-duplication: a keyed digest, never the values (PHI). */
  key: string;
}

export type ConditionalCreateResult = WriteResult & { matched: boolean };

/**
 * The conditional interactions of R4 http.html: conditional create (#ccreate, If-None-Exist), conditional
 * update (#cond-update), conditional patch (#patch) and conditional delete (#3.1.0.7.1), plus the
 * conditional references of transactions (#trules). Each one finds its target by search, inside the
 * write's transaction and after a transaction-scoped lock on its criteria, so racing requests with the same
 * criteria are serialised and the second sees what the first committed.
 *
 * Diagnostics never repeat the criteria: search values are often identifiers or names (PHI).
 */
export class ConditionalService {
  constructor(
    private readonly resources: ResourceService,
    private readonly search: SearchService,
    private readonly index: SearchIndex,
  ) {}

  /**
   * Parses the criteria of a conditional interaction. `raw` is a query string, optionally led by "?" or
   * "[type]?" (as clients send If-None-Exist and Bundle.entry.request.ifNoneExist), or an already parsed
   * query. Empty criteria are a 400: a conditional delete without them would pick from every resource.
   */
  async criteria(type: string, raw: string | Record<string, string[]>, what: string): Promise<Criteria> {
    const query: Record<string, string[]> = {};
    if (typeof raw === 'string') {
      const q = raw.trim();
      const mark = q.indexOf('?');
      if (mark >= 0 && q.slice(0, mark) !== '' && q.slice(0, mark).replace(/^\/+/, '') !== type) {
        throw new FhirError('bad-request', `the ${what} criteria must search ${type}`);
      }
      for (const [k, v] of new URLSearchParams(mark >= 0 ? q.slice(mark + 1) : q)) (query[k] ??= []).push(v);
    } else {
      for (const [k, v] of Object.entries(raw)) query[k] = [...v];
    }
    delete query._format;
    delete query._pretty;
    for (const [k, values] of Object.entries(query)) {
      if (values.some((v) => v.trim() === '')) {
        throw new FhirError('bad-request', `the ${what} criteria have an empty value`, { expression: [k] });
      }
    }
    if (!Object.keys(query).some((k) => !NOT_CRITERIA.has(k))) {
      throw new FhirError('bad-request', `${what} needs search criteria that select resources`);
    }
    // Outside any transaction: the blind-index key may have to be loaded from the database.
    await this.index.ready();
    const pairs = Object.entries(query)
      .flatMap(([k, vs]) => vs.map((v) => [k, v] as const))
      .sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0));
    const digest = this.index.hash(type, '_conditional', JSON.stringify(pairs));
    return { resourceType: type, query, key: `conditional:${type}:${digest}` };
  }

  /**
   * Locks the criteria until the transaction ends, then finds up to two matches: enough to tell none, one
   * and several. Unknown parameters are a 400 (SearchService.matchingIds is strict).
   */
  async match(ctx: RequestContext, r: ResourceRepository, c: Criteria): Promise<string[]> {
    await r.lockConditional(c.key);
    return this.search.matchingIds(ctx, c.resourceType, c.query, 2, r);
  }

  /** R4 http.html#ccreate: none matches -> create (201); one -> that one (200), nothing written; more -> 412. */
  async create(
    ctx: RequestContext,
    type: string,
    body: unknown,
    ifNoneExist: string,
    repo?: ResourceRepository,
    id: string = randomUUID(),
  ): Promise<ConditionalCreateResult> {
    this.resources.assertType(type);
    ctx.scopes.assertAllows(type, 'c');
    const resource = this.resources.validBody(type, body, id);
    const c = await this.criteria(type, ifNoneExist, 'If-None-Exist');
    return this.resources.transact(repo, this.keyScopes(resource, id), async (r) => {
      const ids = await this.match(ctx, r, c);
      if (ids.length > 1) throw tooMany(type, 'conditional create');
      if (ids.length === 1) return { ...(await existing(r, type, ids[0]!)), matched: true };
      return { ...(await this.resources.createIn(r, type, id, resource)), matched: false };
    });
  }

  /**
   * R4 http.html#cond-update: none matches -> create, under the body's id if it has one (update as create)
   * or a new server id; one -> update it (a body id must be that one's, else 400); more -> 412. As R5 made
   * explicit, a body id that names an existing resource the criteria do not match is a 409, not an
   * overwrite of a resource the client did not select.
   */
  async update(
    ctx: RequestContext,
    type: string,
    query: Record<string, string[]>,
    body: unknown,
    ifMatch: string | undefined,
    repo?: ResourceRepository,
  ): Promise<WriteResult> {
    this.resources.assertType(type);
    const rawId = (body as { id?: unknown } | null | undefined)?.id;
    if (rawId !== undefined && (typeof rawId !== 'string' || !ID_PATTERN.test(rawId))) {
      throw new FhirError('bad-request', 'invalid id', { expression: [`${type}.id`] });
    }
    const bodyId = rawId;
    const tentativeId = bodyId ?? randomUUID();
    const resource = this.resources.validBody(type, body, tentativeId);
    const c = await this.criteria(type, query, 'conditional update');
    return this.resources.transact(repo, this.keyScopes(resource, tentativeId), async (r) => {
      const ids = await this.match(ctx, r, c);
      if (ids.length > 1) throw tooMany(type, 'conditional update');
      const target = ids[0];
      if (target === undefined && bodyId !== undefined) {
        const current = await r.lockCurrent(type, bodyId);
        if (current && !current.deleted) {
          throw new FhirError('conflict', `the ${type} with the id in the body does not match the criteria`, {
            expression: [`${type}.id`],
          });
        }
      }
      if (target !== undefined && bodyId !== undefined && bodyId !== target) {
        throw new FhirError('bad-request', `the id in the body is not the id of the matching ${type}`, {
          expression: [`${type}.id`],
        });
      }
      return this.resources.updateIn(ctx, r, type, target ?? tentativeId, resource, ifMatch);
    });
  }

  /** Conditional patch (R4 http.html#patch): none matches -> 404, one -> patch it, more -> 412. */
  async patch(
    ctx: RequestContext,
    type: string,
    query: Record<string, string[]>,
    body: unknown,
    contentType: string | undefined,
    ifMatch: string | undefined,
    repo?: ResourceRepository,
  ): Promise<WriteResult> {
    this.resources.assertType(type);
    ctx.scopes.assertAllows(type, 'u');
    const patch = parsePatch(body, contentType);
    const c = await this.criteria(type, query, 'conditional patch');
    return this.resources.transact(repo, [], async (r) => {
      const ids = await this.match(ctx, r, c);
      if (ids.length > 1) throw tooMany(type, 'conditional patch');
      if (ids.length === 0)
        throw new FhirError('not-found', `no ${type} matches the conditional patch criteria`);
      return this.resources.patchIn(r, type, ids[0]!, patch, ifMatch);
    });
  }

  /**
   * Conditional delete (R4 http.html#3.1.0.7.1), single-match only (conditionalDelete = single, as HAPI by
   * default): none matches -> nothing to do; one -> delete it; more -> 412 rather than delete several.
   */
  async delete(
    ctx: RequestContext,
    type: string,
    query: Record<string, string[]>,
    ifMatch: string | undefined,
    repo?: ResourceRepository,
  ): Promise<{ matched: boolean; version?: StoredVersion }> {
    this.resources.assertType(type);
    ctx.scopes.assertAllows(type, 'd');
    const c = await this.criteria(type, query, 'conditional delete');
    return this.resources.transact(repo, [], async (r) => {
      const ids = await this.match(ctx, r, c);
      if (ids.length > 1) {
        throw new FhirError(
          'precondition-failed',
          `the conditional delete criteria match more than one ${type}; this server deletes a single match only`,
        );
      }
      if (ids.length === 0) return { matched: false };
      return { matched: true, version: await this.resources.deleteIn(r, type, ids[0]!, ifMatch) };
    });
  }

  /**
   * A copy of `resource` in which every conditional reference ("Type?params") is replaced by the literal
   * reference of its single match, searched in `r` so resources written earlier in the same transaction
   * count (R4 http.html#trules). No match or several: 412, and the transaction writes nothing.
   */
  async resolveReferences(
    ctx: RequestContext,
    resource: AnyResource,
    r: ResourceRepository | undefined,
  ): Promise<AnyResource> {
    const found = new Map<string, string>();
    const collect = (node: unknown): void => {
      if (Array.isArray(node)) for (const n of node) collect(n);
      else if (node !== null && typeof node === 'object') {
        for (const [k, v] of Object.entries(node)) {
          if (k === 'reference' && typeof v === 'string' && isConditionalReference(v)) found.set(v, '');
          else collect(v);
        }
      }
    };
    collect(resource);
    if (found.size === 0) return resource;
    for (const ref of found.keys()) {
      const [, type, qs] = CONDITIONAL_REFERENCE.exec(ref)!;
      try {
        this.resources.assertType(type!);
      } catch {
        throw new FhirError('bad-request', 'a conditional reference names an unknown resource type');
      }
      const c = await this.criteria(type!, qs!, 'conditional reference');
      const ids = await this.search.matchingIds(ctx, type!, c.query, 2, r);
      if (ids.length !== 1) {
        throw new FhirError(
          'precondition-failed',
          ids.length === 0
            ? `a conditional reference to ${type} matches no resource`
            : `a conditional reference to ${type} matches more than one resource`,
        );
      }
      found.set(ref, `${type}/${ids[0]}`);
    }
    const rewrite = (node: unknown): unknown => {
      if (Array.isArray(node)) return node.map(rewrite);
      if (node === null || typeof node !== 'object') return node;
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(node)) {
        out[k] = k === 'reference' && typeof v === 'string' && found.has(v) ? found.get(v) : rewrite(v);
      }
      return out;
    };
    return rewrite(resource) as AnyResource;
  }

  /**
   * The data keys to make ready before the transaction. A resource whose key scope is its own id (a
   * Patient) is left out: the id is only tentative until the search has run, and a key made for an id
   * that is never written would outlive it. If the write does happen, the store creates the key and runs
   * the transaction again.
   */
  private keyScopes(resource: AnyResource, id: string): string[] {
    const scope = keyScopeFor(this.resources.compartmentsOf(resource, id));
    return scope === `patient:${id}` ? [] : [scope];
  }
}

export function isConditionalReference(ref: string): boolean {
  return CONDITIONAL_REFERENCE.test(ref);
}

function tooMany(type: string, what: string): FhirError {
  return new FhirError(
    'precondition-failed',
    `the ${what} criteria match more than one ${type}; make them more selective`,
  );
}

async function existing(r: ResourceRepository, type: string, id: string): Promise<WriteResult> {
  const v = await r.readCurrent(type, id);
  if (!v?.json) throw new FhirError('internal', 'a matching resource could not be read');
  return { status: 200, version: v, resource: JSON.parse(v.json.toString('utf8')) as AnyResource };
}
