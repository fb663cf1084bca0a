import type { Bundle, BundleEntry, BundleLink } from '@medplum/fhirtypes';
import { normalizeSearchString } from '#crypto';
import { FhirError } from '../fhir/outcomes.js';
import type { RequestContext } from '../fhir/request-context.js';
import { parseReference, type AnyResource } from '../fhir/resource-json.js';
import { parseStored } from '../fhir/stored-json.js';
import type { Candidate, CandidateQuery, ResourceRepository } from '../store/resource.repository.js';
import type { ResourceStore } from '../store/resource.store.js';
import { isPatientScoped, patientPinParams } from './patient-scope.js';
import { matchesAll, type Criterion } from './search-criteria.js';
import { codings, stringParts } from './search-values.js';
import type { SearchIndex } from './search-index.js';
import { bandedToken, isBandable } from './search-tokens.js';
import type { ParamExpression } from './param-expression.js';
import { indexedParams, paramByUrl, type IndexedParam } from './search-params.js';
import {
  planIncludes,
  planSearch,
  splitValues,
  type IncludeSpec,
  type SearchPlan,
  type SortKey,
} from './search-query.js';
import { parseDateRange } from '../fhir/fhir-date.js';

/** How many candidates one request may re-check before it returns what it has with a next link. */
const MAX_SCAN = 20_000;
const MAX_TOTAL_SCAN = 100_000;
/** Chains and _has resolve to at most this many ids; a broader join is refused as too costly. */
export const MAX_JOIN_IDS = 10_000;
/** _sort orders decrypted matches in memory (their values are encrypted); more matches are refused. */
export const MAX_SORT = 10_000;
/** _include and _revinclude add at most this many resources to one page (Medplum's bound too). */
export const MAX_INCLUDES = 1_000;
/**
 * A chain target whose index candidates are at most this many is read and decided at once, in the same
 * round trip as its candidate ids (a chain on an identifier names one resource: no lazy reads later).
 */
const DECIDE_NOW = 32;
/** :iterate follows includes at most this many rounds. */
const MAX_ITERATE = 3;

/** A search with its joins resolved and its tokens hashed: what the candidate query needs. */
interface Prepared {
  plan: SearchPlan;
  candidates: Omit<CandidateQuery, 'limit'>;
  /** Chains resolved through the index only, re-checked per candidate after `plan.criteria` (scan). */
  chains: LazyChain[];
  /** A join matched nothing, so neither does the search. */
  empty: boolean;
}

/**
 * A chain whose targets were found through the blind index alone (a superset of the true targets, see
 * prepare): a candidate satisfies it when one of its references names a target that, decrypted, matches
 * the inner search.
 */
interface LazyChain {
  /** The searched type's reference parameter (its element, as the reference criterion reads it). */
  expression: ParamExpression;
  targets: LazyTarget[];
}

interface LazyTarget {
  type: string;
  /** Index candidates of the inner search: every target that matches it is among them. */
  ids: ReadonlySet<string>;
  /** The inner search: its criteria and its own lazy chains decide a decrypted candidate. */
  prep: Prepared;
  /** Candidates decided so far in this request (true: a match), so each is read and checked once. */
  decided: Map<string, boolean>;
}

export interface SearchOptions {
  /** Compartment search (R4 compartmentdefinition.html#search): only the Patient compartment exists here. */
  compartment?: { type: string; id: string };
  repo?: ResourceRepository;
}

/**
 * FHIR search over encrypted data (https://hl7.org/fhir/R4/search.html). Blind-index tokens select
 * candidates in id order; each one is decrypted and re-checked against the exact FHIR semantics before it
 * may count or be returned, so page sizes, cursors and totals only ever see true matches. Chains and _has
 * are resolved first, into the ids they allow (a chain the index bounds into candidate ids, its targets
 * then re-checked per candidate, see resolveChain); _sort orders the decrypted matches in memory.
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
    opts: SearchOptions = {},
  ): Promise<Bundle> {
    ctx.scopes.assertAllows(resourceType, 's');
    const plan = planSearch(resourceType, query, strict);
    await this.index.ready();
    const repo = opts.repo ?? this.store.repo;
    const prep = await this.prepare(ctx, plan, repo, opts.compartment);
    const base = opts.compartment
      ? `${opts.compartment.type}/${opts.compartment.id}/${resourceType}`
      : resourceType;
    const bundle: Bundle = {
      resourceType: 'Bundle',
      type: 'searchset',
      link: [{ relation: 'self', url: this.url(base, plan.echo, plan.cursor) }],
    };
    if (plan.summaryCount) {
      bundle.total = prep.empty ? 0 : await this.count(prep, repo);
      return bundle;
    }
    const { page, links, total } =
      plan.sort.length > 0
        ? await this.sortedPage([prep], repo, {
            count: plan.count,
            cursor: plan.cursor,
            bind: `${plan.resourceType}?${plan.echo.toString()}`,
            link: (c) => this.url(base, plan.echo, c),
          })
        : await this.idPage(prep, repo, base);
    if (plan.total === 'accurate') bundle.total = total ?? (prep.empty ? 0 : await this.count(prep, repo));
    bundle.link!.push(...links);
    bundle.entry = page.map((r): BundleEntry => this.entry(r, 'match'));
    await this.addIncludes(ctx, plan, page, repo, bundle);
    return bundle;
  }

  /** The page's _include and _revinclude entries, and a warning entry when they were cut short. */
  private async addIncludes(
    ctx: RequestContext,
    specs: Pick<SearchPlan, 'include' | 'revinclude'>,
    page: AnyResource[],
    repo: ResourceRepository,
    bundle: Bundle,
  ): Promise<void> {
    const { included, truncated } = await this.includes(ctx, specs, page, repo);
    bundle.entry!.push(...included.map((r) => this.entry(r, 'include')));
    if (truncated) {
      bundle.entry!.push({
        resource: {
          resourceType: 'OperationOutcome',
          issue: [
            {
              severity: 'warning',
              code: 'too-costly',
              diagnostics: `_include and _revinclude stopped after ${MAX_INCLUDES} resources`,
            },
          ],
        },
        search: { mode: 'outcome' },
      });
    }
  }

  /**
   * System-level search over the types `_type` names (R4 search.html#searchtype, http.html#search): the
   * same criteria on each type, results in (type, id) order, cursor "Type/id". Every parameter must be one
   * all the types define (as Prefer: handling=strict): ignoring it for one type would widen that type's
   * results. _include names one of the types (or *) and applies to the page's resources of that type;
   * _revinclude to those its parameter can point at. _sort takes parameters every type defines, each type
   * reading them through its own definition; ties go by (type, id).
   */
  async searchSystem(
    ctx: RequestContext,
    query: Record<string, string[]>,
    repo: ResourceRepository = this.store.repo,
  ): Promise<Bundle> {
    const types = [...new Set((query._type ?? []).flatMap((v) => splitValues(v)))].sort();
    if (types.length === 0)
      throw new FhirError('bad-request', 'a system-level search needs _type', { expression: ['_type'] });
    if (types.some((t) => !/^[A-Z][A-Za-z]+$/.test(t) || indexedParams(t).size === 0))
      throw new FhirError('bad-request', '_type names an unknown resource type', { expression: ['_type'] });
    const includes = planIncludes(query);
    if (includes.include.some((i) => !i.iterate && i.source !== '*' && !types.includes(i.source)))
      throw new FhirError('bad-request', `_include must name one of the searched types`, {
        expression: ['_include'],
      });
    const rest = Object.fromEntries(
      Object.entries(query).filter(
        ([k]) => !['_type', '_cursor', '_include', '_revinclude'].includes(k.split(':')[0]!),
      ),
    );
    for (const t of types) ctx.scopes.assertAllows(t, 's');
    const plans = types.map((t) => planSearch(t, rest, true));
    await this.index.ready();
    const first = plans[0]!;
    const echo = new URLSearchParams(first.echo);
    for (const [k, v] of includes.echo) echo.append(k, v);
    echo.append('_type', types.join(','));
    const sorted = first.sort.length > 0;
    const cursorText = query._cursor?.[0];
    const cursor =
      cursorText === undefined || sorted
        ? undefined
        : /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(cursorText);
    if (cursorText !== undefined && !sorted && (!cursor || !types.includes(cursor[1]!)))
      throw new FhirError('bad-request', '_cursor is not valid for this search', { expression: ['_cursor'] });
    const bundle: Bundle = {
      resourceType: 'Bundle',
      type: 'searchset',
      link: [{ relation: 'self', url: this.systemUrl(echo, cursorText) }],
    };
    const preps = await Promise.all(plans.map((plan) => this.prepare(ctx, plan, repo)));
    if (first.summaryCount || first.total === 'accurate') {
      let total: number | undefined = 0;
      for (const prep of preps) {
        const n = prep.empty ? 0 : await this.count(prep, repo);
        total = n === undefined || total === undefined ? undefined : total + n;
      }
      if (total !== undefined) bundle.total = total;
      if (first.summaryCount) return bundle;
    }
    if (sorted) {
      // All matches of all types, ordered by the sort keys, then by (type, id); sealed cursors as for a type.
      const { page, links } = await this.sortedPage(preps, repo, {
        count: first.count,
        cursor: cursorText,
        bind: `system?${echo.toString()}`,
        link: (c) => this.systemUrl(echo, c),
      });
      bundle.link!.push(...links);
      bundle.entry = page.map((r) => this.entry(r, 'match'));
      await this.addIncludes(ctx, includes, page, repo, bundle);
      return bundle;
    }
    const found: AnyResource[] = [];
    let stoppedAt: string | undefined;
    for (let i = 0; i < types.length && found.length <= first.count && stoppedAt === undefined; i++) {
      if (cursor && types[i]! < cursor[1]!) continue;
      const after = cursor && types[i] === cursor[1] ? cursor[2] : undefined;
      const progress = { exhausted: false, budget: MAX_SCAN } as {
        last?: string;
        exhausted: boolean;
        budget: number;
      };
      for await (const r of this.scan(preps[i]!, repo, {
        after,
        progress,
        want: first.count + 1 - found.length,
      })) {
        found.push(r);
        if (found.length > first.count) break;
      }
      if (found.length <= first.count && !progress.exhausted && progress.last !== undefined)
        stoppedAt = `${types[i]}/${progress.last}`;
    }
    const page = found.slice(0, first.count);
    const last = page[page.length - 1];
    const next = found.length > first.count && last ? `${last.resourceType}/${last.id}` : stoppedAt;
    if (next !== undefined) bundle.link!.push({ relation: 'next', url: this.systemUrl(echo, next) });
    bundle.entry = page.map((r) => this.entry(r, 'match'));
    await this.addIncludes(ctx, includes, page, repo, bundle);
    return bundle;
  }

  private systemUrl(echo: URLSearchParams, cursor: string | undefined): string {
    const q = new URLSearchParams(echo);
    if (cursor !== undefined) q.set('_cursor', cursor);
    return `${this.fhirBase}?${q.toString()}`;
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
    return this.allIds(ctx, plan, repo, limit, false);
  }

  /** Matching ids in id order, at most `limit`; with `refuseMore`, more than that is a too-costly error. */
  private async allIds(
    ctx: RequestContext,
    plan: SearchPlan,
    repo: ResourceRepository,
    limit: number,
    refuseMore: boolean,
  ): Promise<string[]> {
    return this.collectIds(await this.prepare(ctx, plan, repo), repo, limit, refuseMore);
  }

  /** allIds on a prepared search. */
  private async collectIds(
    prep: Prepared,
    repo: ResourceRepository,
    limit: number,
    refuseMore: boolean,
  ): Promise<string[]> {
    if (prep.empty) return [];
    const ids: string[] = [];
    for await (const r of this.scan(prep, repo, {})) {
      if (ids.length === limit) {
        if (!refuseMore) break;
        throw new FhirError(
          'too-costly',
          `a chained or _has search on ${prep.plan.resourceType} matches more than ${limit} resources; narrow it`,
          {
            expression: [prep.plan.resourceType],
          },
        );
      }
      ids.push(r.id!);
    }
    return ids;
  }

  /**
   * The targets a chain allows (R4 search.html#chaining), as (type, id) references for the outer index
   * condition, and, when they came from the index alone, the lazy chain that re-checks them.
   *
   * Lazy (the index only) when every target type's inner search is bounded by the index: it has a positive
   * token condition or an id list (_id, or a _has it resolved into ids), and all targets' candidates
   * together are at most MAX_JOIN_IDS. The candidates are then a superset of the matches, found without
   * decrypting anything; the outer search probes their references and decrypts only the targets its own
   * surviving candidates name (a page of 20 Observations reads about 20 Patients, not every match).
   * Membership of a candidate set also carries what the SQL alone decides (_lastUpdated, _id, _has).
   * A target with at most DECIDE_NOW candidates comes decrypted with its ids and is decided at once (a
   * chain on an identifier then costs one round trip, as eagerly); when all are, the chain is the exact
   * reference criterion of their matches, as eagerly.
   *
   * Eager otherwise, as before: an inner search the index cannot narrow (only :contains, ne, :missing=true,
   * :not or _lastUpdated criteria) would list every resource of the type, and a candidate set over the
   * bound may still hold few enough matches; both are decrypted and re-checked up front, and more than
   * MAX_JOIN_IDS true matches is refused as too costly, exactly as before.
   */
  private async resolveChain(
    ctx: RequestContext,
    chain: SearchPlan['chains'][number],
    depth: number,
    repo: ResourceRepository,
  ): Promise<{ refs: { type: string; id: string }[]; lazy?: LazyChain['targets'] }> {
    const inner: { type: string; prep: Prepared }[] = [];
    for (const t of chain.targets) {
      // A chain reveals the target's data, so the client needs search rights on it too.
      ctx.scopes.assertAllows(t.type, 's');
      inner.push({
        type: t.type,
        prep: await this.prepare(ctx, planSearch(t.type, t.query, true, depth + 1), repo),
      });
    }
    const bounded = (p: Prepared) =>
      p.empty ||
      p.candidates.ids !== undefined ||
      p.candidates.links !== undefined ||
      p.candidates.conditions.some((c) => !c.negate);
    if (inner.every((t) => bounded(t.prep))) {
      const refs: { type: string; id: string }[] = [];
      const lazy: LazyTarget[] = [];
      let over = false;
      for (const t of inner) {
        if (t.prep.empty) continue;
        const rows = await repo.searchCandidateIds(
          { ...t.prep.candidates, limit: MAX_JOIN_IDS - refs.length + 1 },
          DECIDE_NOW,
          namesFew(t.prep.plan),
        );
        if (refs.length + rows.length > MAX_JOIN_IDS) {
          over = true;
          break;
        }
        if (rows.every((r): r is Candidate => r.json !== undefined)) {
          // Few: decided now, so the target holds its true matches only, each already decided.
          const found = (await this.decideBatch(t.prep, rows, repo)).filter((r) => r !== undefined);
          const ids = found.map((r) => r.id!);
          refs.push(...ids.map((id) => ({ type: t.type, id })));
          lazy.push({
            type: t.type,
            ids: new Set(ids),
            prep: t.prep,
            decided: new Map(ids.map((id) => [id, true])),
          });
        } else {
          refs.push(...rows.map((r) => ({ type: t.type, id: r.id })));
          lazy.push({ type: t.type, ids: new Set(rows.map((r) => r.id)), prep: t.prep, decided: new Map() });
        }
      }
      // Every target decided already: its matches are the chain's exact reference criterion, as when eager.
      if (!over && lazy.every((t) => t.decided.size === t.ids.size)) return { refs };
      if (!over) return { refs, lazy };
    }
    const refs: { type: string; id: string }[] = [];
    for (const t of inner) {
      const found = await this.collectIds(t.prep, repo, MAX_JOIN_IDS - refs.length, true);
      refs.push(...found.map((id) => ({ type: t.type, id })));
    }
    return { refs };
  }

  /** Resolves chains and _has into ids, then hashes every token with the searched type's keys. */
  private async prepare(
    ctx: RequestContext,
    plan: SearchPlan,
    repo: ResourceRepository,
    compartment?: { type: string; id: string },
  ): Promise<Prepared> {
    const conditions = [...plan.conditions];
    const criteria = [...plan.criteria];
    const chains: LazyChain[] = [];
    // The target candidates of lazy chains, probed by reference token or through the link table (below).
    const lazyRefs: { param: string; refs: { type: string; id: string }[] }[] = [];
    // The reference criteria of lazy chains: candidates, not matches, so they only pin (patientPins).
    const pinning: Criterion[] = [];
    let ids = plan.ids;
    let empty = ids?.length === 0;
    for (const chain of plan.chains) {
      if (empty) break;
      const { refs, lazy } = await this.resolveChain(ctx, chain, plan.depth, repo);
      if (refs.length === 0) {
        empty = true;
        break;
      }
      const p = indexedParams(plan.resourceType).get(chain.param)!;
      const reference: Criterion = {
        code: chain.param,
        expression: p.expr,
        values: refs.map((r) => ({ kind: 'reference' as const, ...r })),
      };
      if (lazy) {
        lazyRefs.push({ param: chain.param, refs });
        chains.push({ expression: p.expr, targets: lazy });
        pinning.push(reference);
      } else {
        conditions.push({ terms: [{ param: chain.param, tokens: refs.map((r) => `r|${r.type}/${r.id}`) }] });
        criteria.push(reference);
      }
    }
    // A lazy chain's targets bound the outer candidates either by one keyed "r|Type/id" token per target or
    // by a join on the link table resource_reference. The table holds every local reference of the current
    // version (collectReferences, written in the statement that writes the tokens; a deletion removes
    // them), so it finds whatever the tokens would: reference-table.spec.ts proves every value a reference
    // parameter yields is among them. It also finds references of other elements, which the lazy chain's
    // re-check of this parameter's own expression removes. Measured at 100k resources (Postgres): with
    // another positive index condition (a date), the GIN index intersects the reference tokens with it
    // faster (4 ms) than the join, which probes every referencing row (1,800 rows, 15 ms); as the only
    // condition, the long token list made the planner scan the whole table (2.8 s) and the join takes
    // 10 ms. So the join where nothing else bounds the index, the tokens otherwise.
    const join = !conditions.some((c) => !c.negate);
    const links: { type: string; id: string }[][] = [];
    for (const { param, refs } of lazyRefs) {
      if (join) links.push(refs);
      else conditions.push({ terms: [{ param, tokens: refs.map((r) => `r|${r.type}/${r.id}`) }] });
    }
    for (const has of plan.has) {
      if (empty) break;
      ctx.scopes.assertAllows(has.type, 's');
      const inner = planSearch(has.type, has.query, true, plan.depth + 1);
      const innerPrep = await this.prepare(ctx, inner, repo);
      const p = indexedParams(has.type).get(has.param)!;
      const found = new Set<string>();
      if (!innerPrep.empty) {
        let scanned = 0;
        for await (const r of this.scan(innerPrep, repo, {})) {
          if (++scanned > MAX_JOIN_IDS) {
            throw new FhirError(
              'too-costly',
              `${has.key} matches more than ${MAX_JOIN_IDS} resources; narrow it`,
              {
                expression: [has.key],
              },
            );
          }
          for (const v of p.expr.evaluate(r)) {
            const ref = (v as { reference?: unknown } | null)?.reference;
            const local = typeof ref === 'string' ? parseReference(ref) : undefined;
            if (local?.type === plan.resourceType) found.add(local.id);
          }
        }
      }
      ids = ids ? ids.filter((i) => found.has(i)) : [...found];
      if (ids.length === 0) empty = true;
    }
    let patientCompartment: string | undefined;
    if (compartment) {
      if (compartment.type !== 'Patient')
        throw new FhirError('not-implemented', `only the Patient compartment can be searched`, {
          expression: [compartment.type],
        });
      patientCompartment = compartment.id;
    }
    if (empty) {
      // A join matched nothing: nothing to probe, and nothing to refuse either.
      return {
        plan: { ...plan, criteria },
        chains: [],
        empty,
        candidates: { resourceType: plan.resourceType, conditions: [], lastUpdated: [] },
      };
    }
    const contains = criteria.find((c) => c.values.some((v) => v.kind === 'string' && v.mode === 'contains'));
    if (
      contains &&
      conditions.every((c) => c.negate) &&
      links.length === 0 &&
      !ids &&
      patientCompartment === undefined
    ) {
      // :contains cannot use a prefix index without n-gram tokens, which would leak far more
      // (docs/ENCRYPTION.md); it filters what another criterion or a compartment selects instead of
      // scanning every resource of the type.
      throw new FhirError(
        'bad-request',
        `${contains.code}:contains needs another selective search parameter`,
        {
          expression: [`${contains.code}:contains`],
        },
      );
    }
    const pins = patientPins(plan.resourceType, [...criteria, ...pinning], compartment);
    if (!pins) {
      // Also where the index is not probed (ne, :contains, :missing): a per-patient parameter is searched
      // within named patients only, whatever the form of the query.
      const scoped = criteria.find((c) => scopedParamsOf(plan.resourceType, c.code).length > 0);
      if (scoped) throw unpinned(plan.resourceType, scopedParamsOf(plan.resourceType, scoped.code)[0]!);
    }
    const hashed = conditions.map((c) => ({
      ...(c.negate ? { negate: true } : {}),
      terms: c.terms.map((t) => ({ param: t.param, tokens: this.hashTerm(plan.resourceType, t, pins) })),
    }));
    // A short string prefix matches many resources; its id-band tokens (id-bands.ts) let a page in id order
    // read only the bands it reaches. Hashed per band when the repository asks, usually for two bands.
    const bandable = conditions.findIndex(
      (c) => !c.negate && c.terms.every((t) => t.tokens.length > 0 && t.tokens.every(isBandable)),
    );
    const banded =
      bandable < 0
        ? undefined
        : {
            condition: bandable,
            tokens: (band: number) =>
              conditions[bandable]!.terms.flatMap((t) =>
                this.hashTerm(
                  plan.resourceType,
                  { param: t.param, tokens: t.tokens.map((x) => bandedToken(band, x)) },
                  pins,
                ),
              ),
          };
    return {
      plan: { ...plan, criteria },
      chains,
      empty,
      candidates: {
        resourceType: plan.resourceType,
        conditions: hashed,
        lastUpdated: plan.lastUpdated,
        ...(banded ? { banded } : {}),
        ...(ids ? { ids } : {}),
        ...(links.length > 0 ? { links } : {}),
        ...(patientCompartment !== undefined ? { patientCompartment } : {}),
      },
    };
  }

  /**
   * A term's hashed tokens. A patient-scoped parameter (patient-scope.ts) is probed under each pinned
   * patient's key, and under the global key for resources in no or several Patient compartments.
   */
  private hashTerm(
    type: string,
    t: { param: string; tokens: string[] },
    pins: string[] | undefined,
  ): string[] {
    const global = this.index.hashAll(type, t.param, t.tokens);
    if (!isPatientScoped(type, t.param)) return global;
    if (!pins) throw unpinned(type, t.param);
    if (pins.length * t.tokens.length > MAX_JOIN_IDS * 4)
      throw new FhirError(
        'too-costly',
        `${type}.${t.param} over this many patients is too costly; narrow the search`,
        {
          expression: [t.param],
        },
      );
    return [...global, ...pins.flatMap((pid) => this.index.hashAll(type, t.param, t.tokens, pid))];
  }

  /**
   * Decrypted, re-checked matches in id order (descending with `before`), starting after/before an id.
   * Stops after MAX_SCAN candidates when `budget` is set, reporting where it stopped through `progress`.
   */
  private async *scan(
    prep: Prepared,
    repo: ResourceRepository,
    from: {
      after?: string;
      before?: string;
      progress?: { last?: string; exhausted: boolean; budget?: number };
      /** How many matches the caller wants first: the first batch asks for just that many candidates. */
      want?: number;
    },
  ): AsyncGenerator<AnyResource> {
    if (prep.empty) {
      if (from.progress) from.progress.exhausted = true;
      return;
    }
    let after = from.after;
    let before = from.before;
    const descending = before !== undefined;
    let scanned = 0;
    // Each candidate costs a transfer, a decryption and a re-check, so the first batch is what the page
    // needs; later batches grow while the re-check keeps rejecting.
    let limit = Math.min(Math.max(from.want ?? 500, 1), 500);
    for (let done = false; !done; limit = Math.min(limit * 4, 500)) {
      const batch = await repo.searchCandidates({
        ...prep.candidates,
        ...(after !== undefined ? { afterId: after } : {}),
        ...(before !== undefined ? { beforeId: before } : {}),
        descending,
        limit,
      });
      done = batch.length < limit;
      if (done && from.progress) from.progress.exhausted = true;
      // With lazy chains the batch is decided at once, so that their targets are read in one go.
      const decided = prep.chains.length > 0 ? await this.decideBatch(prep, batch, repo) : undefined;
      for (const [i, v] of batch.entries()) {
        if (descending) before = v.id;
        else after = v.id;
        scanned++;
        if (from.progress) from.progress.last = v.id;
        if (decided) {
          const resource = decided[i];
          if (resource) yield resource;
        } else {
          const resource = parseStored(v.json);
          if (matchesAll(resource, prep.plan.criteria)) yield resource;
        }
        if (from.progress?.budget !== undefined && scanned >= from.progress.budget) {
          if (from.progress) from.progress.exhausted = done && v === batch[batch.length - 1];
          return;
        }
      }
    }
  }

  /** The batch's matches (undefined where a candidate fails): criteria first, then the lazy chains. */
  private async decideBatch(
    prep: Prepared,
    batch: readonly Candidate[],
    repo: ResourceRepository,
  ): Promise<(AnyResource | undefined)[]> {
    const out = batch.map((v) => {
      const r = parseStored(v.json);
      return matchesAll(r, prep.plan.criteria) ? r : undefined;
    });
    if (prep.chains.length === 0) return out;
    const survivors = out.filter((r): r is AnyResource => r !== undefined);
    const held = await this.chainsHold(survivors, prep.chains, repo);
    const failed = new Set(survivors.filter((_, i) => !held[i]));
    return out.map((r) => (r && !failed.has(r) ? r : undefined));
  }

  /**
   * Whether each resource satisfies every lazy chain: one of its references names a target candidate that,
   * decrypted, matches the inner search (its criteria and, recursively, its own lazy chains). The targets
   * the resources name are read together, per chain and target type, and each is decided once a request.
   */
  private async chainsHold(
    rs: readonly AnyResource[],
    chains: readonly LazyChain[],
    repo: ResourceRepository,
  ): Promise<boolean[]> {
    const ok = rs.map(() => true);
    for (const chain of chains) {
      const named = rs.map((r, i) => (ok[i] ? chainTargets(r, chain) : []));
      const wanted = new Map<LazyTarget, Set<string>>();
      for (const list of named) {
        for (const { target, id } of list) {
          if (target.decided.has(id)) continue;
          if (!wanted.has(target)) wanted.set(target, new Set());
          wanted.get(target)!.add(id);
        }
      }
      for (const [target, ids] of wanted) {
        const found = (await repo.readCurrentMany(target.type, [...ids])).map((v) => ({
          id: v.id,
          r: JSON.parse(v.json!.toString('utf8')) as AnyResource,
        }));
        const matching = found.filter((f) => matchesAll(f.r, target.prep.plan.criteria));
        const held = await this.chainsHold(
          matching.map((f) => f.r),
          target.prep.chains,
          repo,
        );
        for (const id of ids) target.decided.set(id, false);
        matching.forEach((f, i) => {
          if (held[i]) target.decided.set(f.id, true);
        });
      }
      named.forEach((list, i) => {
        if (ok[i]) ok[i] = list.some(({ target, id }) => target.decided.get(id) === true);
      });
    }
    return ok;
  }

  /**
   * A page in id order. Cursors are "a:<id>" (after) and "b:<id>" (before): ids are random and not PHI,
   * and a keyset cursor stays exact while other requests write (R4 http.html#paging leaves the form open).
   */
  private async idPage(
    prep: Prepared,
    repo: ResourceRepository,
    base: string,
  ): Promise<{ page: AnyResource[]; links: BundleLink[]; total?: number }> {
    const { plan } = prep;
    const cursor = parseIdCursor(plan.cursor);
    const progress = { exhausted: false, budget: MAX_SCAN } as {
      last?: string;
      exhausted: boolean;
      budget: number;
    };
    const found: AnyResource[] = [];
    for await (const r of this.scan(prep, repo, { ...cursor, progress, want: plan.count + 1 })) {
      found.push(r);
      if (found.length > plan.count) break;
    }
    const links: BundleLink[] = [];
    const link = (relation: string, c: string) => links.push({ relation, url: this.url(base, plan.echo, c) });
    if (cursor.before !== undefined) {
      // Walking back: newest-first ids, shown in ascending order.
      const page = found.slice(0, plan.count).reverse();
      if (found.length > plan.count || (!progress.exhausted && progress.last !== undefined))
        link('previous', `b:${page[0]?.id ?? progress.last}`);
      link('next', `a:${page[page.length - 1]?.id ?? cursor.before}`);
      return { page, links };
    }
    const page = found.slice(0, plan.count);
    if (cursor.after !== undefined) link('previous', `b:${page[0]?.id ?? cursor.after}`);
    if (found.length > plan.count) link('next', `a:${page[page.length - 1]!.id}`);
    else if (!progress.exhausted && progress.last !== undefined) link('next', `a:${progress.last}`);
    return {
      page,
      links,
      ...(cursor.after === undefined && found.length <= plan.count && progress.exhausted
        ? { total: page.length }
        : {}),
    };
  }

  /**
   * A page of a sorted search (R4 search.html#sort): every match (at most MAX_SORT) is decrypted and
   * ordered by the sort keys, then by id, and the page starts after the sealed cursor's position.
   * Missing values sort last in either direction.
   */
  private async sortedPage(
    preps: Prepared[],
    repo: ResourceRepository,
    opts: {
      count: number;
      cursor: string | undefined;
      /** What the sealed cursor is bound to: the search it came from. */
      bind: string;
      link: (cursor: string) => string;
    },
  ): Promise<{ page: AnyResource[]; links: BundleLink[]; total: number }> {
    type Row = { key: SortValue[]; r: AnyResource };
    const sort = preps[0]!.plan.sort;
    const rows: Row[] = [];
    for (const prep of preps) {
      for await (const r of this.scan(prep, repo, {})) {
        if (rows.length === MAX_SORT) {
          throw new FhirError('too-costly', `_sort orders at most ${MAX_SORT} matches; narrow the search`, {
            expression: ['_sort'],
          });
        }
        // Each type reads the sort parameter through its own definition of it (system search).
        rows.push({ key: sortKey(prep.plan.sort, r), r });
      }
    }
    const byIdentity = (a: AnyResource, b: AnyResource) =>
      a.resourceType < b.resourceType
        ? -1
        : a.resourceType > b.resourceType
          ? 1
          : a.id! < b.id!
            ? -1
            : a.id! > b.id!
              ? 1
              : 0;
    const cmp = (a: Row, b: Row) => compareKeys(sort, a.key, b.key) || byIdentity(a.r, b.r);
    rows.sort(cmp);
    let start = 0;
    let end = Math.min(opts.count, rows.length);
    if (opts.cursor !== undefined) {
      const c = this.index.openCursor(opts.cursor, opts.bind) as
        { d: 'a' | 'b'; k: SortValue[]; t?: string; id: string } | undefined;
      if (!c || !Array.isArray(c.k))
        throw new FhirError('bad-request', '_cursor is not valid for this search', {
          expression: ['_cursor'],
        });
      const type = c.t ?? preps[0]!.plan.resourceType;
      const pivot = { key: c.k, r: { resourceType: type, id: c.id } as AnyResource };
      if (c.d === 'a') {
        start = rows.findIndex((row) => cmp(row, pivot) > 0);
        if (start < 0) start = rows.length;
        end = Math.min(start + opts.count, rows.length);
      } else {
        end = rows.findIndex((row) => cmp(row, pivot) >= 0);
        if (end < 0) end = rows.length;
        start = Math.max(0, end - opts.count);
      }
    }
    const page = rows.slice(start, end);
    const links: BundleLink[] = [];
    const seal = (d: 'a' | 'b', row: Row) =>
      this.index.sealCursor({ d, k: row.key, t: row.r.resourceType, id: row.r.id }, opts.bind);
    if (start > 0 && page[0]) links.push({ relation: 'previous', url: opts.link(seal('b', page[0])) });
    if (end < rows.length && page.length > 0)
      links.push({ relation: 'next', url: opts.link(seal('a', page[page.length - 1]!)) });
    return { page: page.map((row) => row.r), links, total: rows.length };
  }

  private entry(r: AnyResource, mode: 'match' | 'include'): BundleEntry {
    return {
      fullUrl: `${this.fhirBase}/${r.resourceType}/${r.id}`,
      resource: r,
      search: { mode },
    };
  }

  /**
   * _include and _revinclude (R4 search.html#include), with `*` and :iterate, for one page of matches.
   * Included resources pass the same scope check as a read of their type; ones the client may not read
   * are left out.
   */
  private async includes(
    ctx: RequestContext,
    plan: Pick<SearchPlan, 'include' | 'revinclude'>,
    page: AnyResource[],
    repo: ResourceRepository,
  ): Promise<{ included: AnyResource[]; truncated: boolean }> {
    const out: AnyResource[] = [];
    if (page.length === 0 || (plan.include.length === 0 && plan.revinclude.length === 0))
      return { included: out, truncated: false };
    const seen = new Set(page.map((r) => `${r.resourceType}/${r.id}`));
    let truncated = false;
    const add = (r: AnyResource, next: AnyResource[]) => {
      const key = `${r.resourceType}/${r.id}`;
      if (seen.has(key) || !ctx.scopes.allows(r.resourceType, 'r')) return;
      if (out.length >= MAX_INCLUDES) {
        truncated = true;
        return;
      }
      seen.add(key);
      out.push(r);
      next.push(r);
    };
    let from = page;
    for (let round = 0; round <= MAX_ITERATE && from.length > 0 && !truncated; round++) {
      const next: AnyResource[] = [];
      const active = (specs: IncludeSpec[]) => specs.filter((s) => (round === 0 ? true : s.iterate));
      for (const inc of active(plan.include)) await this.forwardInclude(inc, from, repo, (r) => add(r, next));
      for (const rev of active(plan.revinclude))
        await this.reverseInclude(rev, from, repo, (r) => add(r, next));
      from = next;
    }
    return { included: out, truncated };
  }

  private async forwardInclude(
    inc: IncludeSpec,
    from: AnyResource[],
    repo: ResourceRepository,
    add: (r: AnyResource) => void,
  ): Promise<void> {
    const wanted = new Map<string, Set<string>>();
    for (const r of from) {
      if (inc.source !== '*' && inc.source !== r.resourceType) continue;
      for (const p of referenceParams(r.resourceType, inc.param)) {
        for (const v of p.expr.evaluate(r)) {
          const ref = (v as { reference?: unknown } | null)?.reference;
          const local = typeof ref === 'string' ? parseReference(ref) : undefined;
          if (!local || (inc.target && inc.target !== local.type)) continue;
          if (!wanted.has(local.type)) wanted.set(local.type, new Set());
          wanted.get(local.type)!.add(local.id);
        }
      }
    }
    for (const [type, ids] of wanted) {
      for (const v of await repo.readCurrentMany(type, [...ids])) add(parseStored(v.json!));
    }
  }

  private async reverseInclude(
    rev: IncludeSpec,
    from: AnyResource[],
    repo: ResourceRepository,
    add: (r: AnyResource) => void,
  ): Promise<void> {
    if (rev.source === '*') return; // _revinclude=* would read every referring resource: refused at parse
    const targets = from.filter((r) => !rev.target || rev.target === r.resourceType);
    const params = referenceParams(rev.source, rev.param);
    if (targets.length === 0 || params.length === 0) return;
    const values = targets.map((r) => ({ kind: 'reference' as const, type: r.resourceType, id: r.id! }));
    const criteria = params.map((p) => ({ code: p.code, expression: p.expr, values }));
    const prep: Prepared = {
      plan: { ...planSearch(rev.source, {}, false), criteria: [] },
      chains: [],
      empty: false,
      candidates: {
        resourceType: rev.source,
        conditions: [
          {
            terms: params.map((p) => ({
              param: p.code,
              tokens: this.index.hashAll(
                rev.source,
                p.code,
                targets.map((r) => `r|${r.resourceType}/${r.id}`),
              ),
            })),
          },
        ],
        lastUpdated: [],
      },
    };
    let scanned = 0;
    for await (const r of this.scan(prep, repo, {})) {
      if (++scanned > MAX_SCAN) break;
      // Any of the parameters may hold the reference (OR), unlike a search's AND.
      if (criteria.some((c) => matchesAll(r, [c]))) add(r);
    }
  }

  private async count(prep: Prepared, repo: ResourceRepository): Promise<number | undefined> {
    let n = 0;
    const progress = { exhausted: false, budget: MAX_TOTAL_SCAN } as { exhausted: boolean; budget: number };
    for await (const _ of this.scan(prep, repo, { progress })) n++;
    // Too many to count exactly within bounds: no total rather than a wrong one.
    return progress.exhausted ? n : undefined;
  }

  private url(path: string, echo: URLSearchParams, cursor: string | undefined): string {
    const q = new URLSearchParams(echo);
    if (cursor !== undefined) q.set('_cursor', cursor);
    const qs = q.toString();
    return `${this.fhirBase}/${path}${qs ? `?${qs}` : ''}`;
  }
}

/**
 * The patients a search is pinned to: a compartment search, or a criterion on a Patient-compartment
 * parameter whose every value is a Patient (R4 compartmentdefinition-patient.html). A matching resource
 * then sits in one of these patients' compartments, so its patient-scoped tokens use one of their keys.
 */
function patientPins(
  type: string,
  criteria: readonly Criterion[],
  compartment: { type: string; id: string } | undefined,
): string[] | undefined {
  if (compartment?.type === 'Patient') return [compartment.id];
  const params = patientPinParams(type);
  for (const c of criteria) {
    if (!params.has(c.code) || c.negate || c.missing !== undefined || c.values.length === 0) continue;
    const targets = indexedParams(type).get(c.code)?.targets ?? [];
    const ids = c.values.map((v) =>
      v.kind === 'reference' &&
      v.id !== undefined &&
      (v.type ?? (targets.length === 1 ? targets[0] : undefined)) === 'Patient'
        ? v.id
        : undefined,
    );
    if (ids.every((id): id is string => id !== undefined)) return [...new Set(ids)];
  }
  return undefined;
}

function unpinned(type: string, param: string): FhirError {
  return new FhirError(
    'bad-request',
    `${type}.${param} is indexed per patient: name the patient (${[...patientPinParams(type)].join(', ') || 'a patient reference'}) or search Patient/[id]/${type}`,
    { expression: [param] },
  );
}

/** The patient-scoped parameters a criterion reads: itself, or a composite's components. */
function scopedParamsOf(type: string, code: string): string[] {
  const p = indexedParams(type).get(code);
  const codes = p?.components
    ? p.components.flatMap((c) => {
        const component = paramByUrl(type, c.definition);
        return component ? [component.code] : [];
      })
    : [code];
  return codes.filter((c) => isPatientScoped(type, c));
}

/**
 * Whether a search is expected to match a few resources at most: it lists ids, or it has an identifier or
 * _id condition (an identifier names one resource, R4 datatypes.html#Identifier). Only the shape of the
 * candidate query follows this guess; the answer is the same either way.
 */
function namesFew(plan: SearchPlan): boolean {
  return (
    plan.ids !== undefined ||
    plan.conditions.some(
      (c) => !c.negate && c.terms.every((t) => t.param === 'identifier' || t.param === '_id'),
    )
  );
}

/**
 * The lazy chain's target candidates a resource references: a local reference "Type/id" (as a reference
 * criterion matches one, search-criteria.ts) whose type and id are among one target's candidates.
 */
function chainTargets(r: AnyResource, chain: LazyChain): { target: LazyTarget; id: string }[] {
  let values: unknown[];
  try {
    values = chain.expression.evaluate(r);
  } catch {
    values = [];
  }
  const out: { target: LazyTarget; id: string }[] = [];
  for (const v of values) {
    const ref = (v as { reference?: unknown } | null)?.reference;
    const local = typeof ref === 'string' ? parseReference(ref) : undefined;
    if (!local) continue;
    for (const target of chain.targets)
      if (target.type === local.type && target.ids.has(local.id)) out.push({ target, id: local.id });
  }
  return out;
}

function parseIdCursor(cursor: string | undefined): { after?: string; before?: string } {
  if (cursor === undefined) return {};
  const m = /^([ab]):([A-Za-z0-9\-.]{1,64})$/.exec(cursor);
  if (!m)
    throw new FhirError('bad-request', '_cursor is not valid for this search', { expression: ['_cursor'] });
  return m[1] === 'a' ? { after: m[2] } : { before: m[2] };
}

function referenceParams(type: string, code: string): IndexedParam[] {
  const all = [...indexedParams(type).values()].filter((p) => p.type === 'reference');
  return code === '*' ? all : all.filter((p) => p.code === code);
}

type SortValue = string | number | null;

const OPEN_START_MS = -1e300;
const OPEN_END_MS = 1e300;

/** The value a resource sorts by for each key: the lowest for ascending, the highest for descending. */
function sortKey(keys: readonly SortKey[], r: AnyResource): SortValue[] {
  return keys.map((k) => {
    if (k.code === '_id') return r.id ?? null;
    if (k.code === '_lastUpdated') return r.meta?.lastUpdated ? Date.parse(r.meta.lastUpdated) : null;
    let values: unknown[];
    try {
      values = k.param!.expr.evaluate(r);
    } catch {
      values = [];
    }
    const candidates = values.flatMap((v) => sortables(k.param!, v, k.descending));
    if (candidates.length === 0) return null;
    return candidates.reduce((a, b) => ((k.descending ? b > a : b < a) ? b : a));
  });
}

function sortables(p: IndexedParam, v: unknown, descending: boolean): (string | number)[] {
  switch (p.type) {
    case 'string':
      return stringParts(v).map(normalizeSearchString);
    case 'token':
      return codings(v).flatMap((c) => (c.code !== undefined ? [c.code] : []));
    case 'number':
      return typeof v === 'number' ? [v] : [];
    case 'quantity': {
      const value = (v as { value?: unknown } | null)?.value;
      return typeof value === 'number' ? [value] : [];
    }
    case 'date': {
      // The same ranges as matching (search-criteria.ts): an open Period start is the beginning of time and
      // an open end its end, so they sort first ascending and first descending respectively. Finite stand-ins
      // keep the values JSON-safe inside sealed cursors.
      const parse = (s: unknown, side: 'start' | 'end') => {
        if (typeof s !== 'string') return [];
        try {
          return [Date.parse(parseDateRange(s, p.code)[side])];
        } catch {
          return [];
        }
      };
      if (typeof v === 'string') return parse(v, descending ? 'end' : 'start');
      const period = v as { start?: unknown; end?: unknown } | null;
      if (!period || typeof period !== 'object' || !('start' in period || 'end' in period)) return [];
      if (descending) return period.end === undefined ? [OPEN_END_MS] : parse(period.end, 'end');
      return period.start === undefined ? [OPEN_START_MS] : parse(period.start, 'start');
    }
    case 'uri':
      return typeof v === 'string' ? [v] : [];
    case 'reference': {
      const ref = (v as { reference?: unknown } | null)?.reference;
      return typeof ref === 'string' ? [ref] : [];
    }
    case 'composite':
      return [];
  }
}

function compareKeys(keys: readonly SortKey[], a: SortValue[], b: SortValue[]): number {
  for (let i = 0; i < keys.length; i++) {
    const x = a[i] ?? null;
    const y = b[i] ?? null;
    if (x === y) continue;
    if (x === null) return 1; // missing last, whatever the direction
    if (y === null) return -1;
    const c = x < y ? -1 : 1;
    return keys[i]!.descending ? -c : c;
  }
  return 0;
}
