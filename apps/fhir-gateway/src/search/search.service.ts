import type { Bundle, BundleEntry } from '@medplum/fhirtypes';
import type { ResourceRepository } from '../store/resource.repository.js';
import type { ResourceStore } from '../store/resource.store.js';
import type { RequestContext } from '../fhir/request-context.js';
import { parseReference, type AnyResource } from '../fhir/resource-json.js';
import type { SearchIndex } from './search-index.js';
import { evalFhirPath } from '@medplum/core';
import { matchesAll, type Criterion } from './search-criteria.js';
import { indexedParams } from './search-params.js';
import { planSearch, type SearchPlan } from './search-query.js';

/** How many candidates one request may re-check before it returns what it has with a next link. */
const MAX_SCAN = 20_000;
const MAX_TOTAL_SCAN = 100_000;

/**
 * FHIR search over encrypted data (https://hl7.org/fhir/R4/search.html), first increment: token, string,
 * reference, uri and date parameters, _id, _lastUpdated, OR (commas) and AND (repeats), _count with stable
 * cursor paging, _total and _summary=count. Blind-index tokens select candidates in id order; each one is
 * decrypted and re-checked against the exact FHIR semantics before it may count or be returned, so the
 * page size, the cursor and the total only ever see true matches.
 */
export class SearchService {
  constructor(
    private readonly store: ResourceStore,
    private readonly index: SearchIndex,
    private readonly fhirBase: string,
  ) {}

  async search(
    ctx: RequestContext,
    resourceType: string,
    query: Record<string, string[]>,
    strict: boolean,
  ): Promise<Bundle> {
    ctx.scopes.assertAllows(resourceType, 's');
    const plan = planSearch(resourceType, query, strict);
    await this.index.ready();
    const hashed = {
      ...plan,
      conditions: plan.conditions.map((c) => ({
        param: c.param,
        tokens: c.tokens.map((t) => this.index.hash(resourceType, c.param, t)),
      })),
    };
    const bundle: Bundle = {
      resourceType: 'Bundle',
      type: 'searchset',
      link: [{ relation: 'self', url: this.url(resourceType, plan.echo, plan.cursor) }],
    };
    if (plan.total === 'accurate' || plan.summaryCount) bundle.total = await this.count(hashed);
    if (plan.summaryCount) return bundle;

    const matches: AnyResource[] = [];
    let after = plan.cursor;
    let scanned = 0;
    let exhausted = false;
    while (matches.length <= plan.count && scanned < MAX_SCAN) {
      const batch = await this.store.repo.searchCandidates({
        ...hashed,
        afterId: after,
        limit: Math.max(50, plan.count * 2),
      });
      if (batch.length === 0) {
        exhausted = true;
        break;
      }
      for (const v of batch) {
        scanned++;
        after = v.id;
        const resource = JSON.parse(v.json!.toString('utf8')) as AnyResource;
        if (this.matches(plan, resource)) matches.push(resource);
        if (matches.length > plan.count) break;
      }
    }
    const page = matches.slice(0, plan.count);
    const nextCursor =
      matches.length > plan.count ? page[page.length - 1]?.id : exhausted ? undefined : after;
    if (nextCursor !== undefined)
      bundle.link!.push({ relation: 'next', url: this.url(resourceType, plan.echo, nextCursor) });
    bundle.entry = page.map((r): BundleEntry => this.entry(r, 'match'));
    bundle.entry.push(...(await this.includes(ctx, plan, page)).map((r) => this.entry(r, 'include')));
    return bundle;
  }

  /**
   * Up to `limit` ids of current resources matching a search, found exhaustively (no paging), for the
   * conditional interactions (R4 http.html#ccreate, #cond-update, #3.1.0.7.1). Unknown parameters are
   * an error here whatever the Prefer header says: ignoring one would widen the match and, for a
   * conditional delete or update, touch resources the client did not mean.
   */
  async matchingIds(
    ctx: RequestContext,
    resourceType: string,
    query: Record<string, string[]>,
    limit: number,
    repo: ResourceRepository = this.store.repo,
  ): Promise<string[]> {
    ctx.scopes.assertAllows(resourceType, 's');
    const plan = planSearch(resourceType, query, true);
    await this.index.ready();
    const hashed = {
      ...plan,
      conditions: plan.conditions.map((c) => ({
        param: c.param,
        tokens: c.tokens.map((t) => this.index.hash(resourceType, c.param, t)),
      })),
    };
    const ids: string[] = [];
    let after: string | undefined;
    for (;;) {
      const batch = await repo.searchCandidates({ ...hashed, afterId: after, limit: 500 });
      if (batch.length === 0) return ids;
      for (const v of batch) {
        after = v.id;
        if (this.matches(plan, JSON.parse(v.json!.toString('utf8')) as AnyResource)) {
          ids.push(v.id);
          if (ids.length >= limit) return ids;
        }
      }
    }
  }

  private entry(r: AnyResource, mode: 'match' | 'include'): BundleEntry {
    return {
      fullUrl: `${this.fhirBase}/${r.resourceType}/${r.id}`,
      resource: r,
      search: { mode },
    };
  }

  /**
   * _include and _revinclude (R4 search.html#include) for one page of matches. Included resources pass the
   * same scope check as a read of their type; ones the client may not read are left out.
   */
  private async includes(ctx: RequestContext, plan: SearchPlan, page: AnyResource[]): Promise<AnyResource[]> {
    if (page.length === 0 || (plan.include.length === 0 && plan.revinclude.length === 0)) return [];
    const seen = new Set(page.map((r) => `${r.resourceType}/${r.id}`));
    const out: AnyResource[] = [];
    const add = (r: AnyResource) => {
      const key = `${r.resourceType}/${r.id}`;
      if (!seen.has(key) && ctx.scopes.allows(r.resourceType, 'r')) {
        seen.add(key);
        out.push(r);
      }
    };
    for (const inc of plan.include) {
      const p = indexedParams(inc.source).get(inc.param)!;
      const wanted = new Map<string, Set<string>>();
      for (const r of page) {
        for (const v of evalFhirPath(p.atom, r)) {
          const ref = (v as { reference?: unknown } | null)?.reference;
          const local = typeof ref === 'string' ? parseReference(ref) : undefined;
          if (!local || (inc.target && inc.target !== local.type)) continue;
          if (!wanted.has(local.type)) wanted.set(local.type, new Set());
          wanted.get(local.type)!.add(local.id);
        }
      }
      for (const [type, ids] of wanted) {
        for (const v of await this.store.repo.readCurrentMany(type, [...ids]))
          add(JSON.parse(v.json!.toString('utf8')) as AnyResource);
      }
    }
    for (const rev of plan.revinclude) {
      const targets = page.filter((r) => !rev.target || rev.target === r.resourceType);
      if (targets.length === 0) continue;
      const p = indexedParams(rev.source).get(rev.param)!;
      const criteria: Criterion[] = [
        {
          code: rev.param,
          expression: p.atom,
          values: targets.map((r) => ({ kind: 'reference' as const, type: r.resourceType, id: r.id! })),
        },
      ];
      const tokens = targets.map((r) =>
        this.index.hash(rev.source, rev.param, `r|${r.resourceType}/${r.id}`),
      );
      let after: string | undefined;
      for (let scanned = 0; scanned < MAX_SCAN;) {
        const batch = await this.store.repo.searchCandidates({
          resourceType: rev.source,
          conditions: [{ param: rev.param, tokens }],
          lastUpdated: [],
          afterId: after,
          limit: 500,
        });
        if (batch.length === 0) break;
        for (const v of batch) {
          scanned++;
          after = v.id;
          const r = JSON.parse(v.json!.toString('utf8')) as AnyResource;
          if (matchesAll(r, criteria)) add(r);
        }
      }
    }
    return out;
  }

  private matches(plan: SearchPlan, resource: AnyResource): boolean {
    return matchesAll(resource, plan.criteria);
  }

  private async count(plan: SearchPlan): Promise<number | undefined> {
    let n = 0;
    let after: string | undefined;
    for (let scanned = 0; scanned < MAX_TOTAL_SCAN;) {
      const batch = await this.store.repo.searchCandidates({ ...plan, afterId: after, limit: 500 });
      if (batch.length === 0) return n;
      for (const v of batch) {
        after = v.id;
        scanned++;
        if (this.matches(plan, JSON.parse(v.json!.toString('utf8')) as AnyResource)) n++;
      }
    }
    return undefined; // too many to count exactly within bounds: no total rather than a wrong one
  }

  private url(type: string, echo: URLSearchParams, cursor: string | undefined): string {
    const q = new URLSearchParams(echo);
    if (cursor !== undefined) q.set('_cursor', cursor);
    const qs = q.toString();
    return `${this.fhirBase}/${type}${qs ? `?${qs}` : ''}`;
  }
}
