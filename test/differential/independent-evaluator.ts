import { evalFhirPath, getSearchParameters, parseFhirPath, type FhirPathAtom } from '@medplum/core';

/**
 * The differential harness's oracle: brute force over plain resources, written apart from the server's
 * search code (no shared module with apps/fhir-gateway/src/search). It evaluates each parameter's official
 * FHIRPath expression as published (not the server's per-type reduction) and applies R4 search.html
 * semantics with its own date arithmetic and its own string folding.
 */
type Res = { resourceType: string; id: string } & Record<string, unknown>;

/**
 * Parsed once, and evaluated once per resource object: the official expressions are long unions over many
 * types, and evaluating them dominates a brute-force pass over thousands of resources. Resources are
 * never mutated here; a changed resource is a new object.
 */
const parsed = new Map<string, FhirPathAtom>();
const evaluated = new WeakMap<object, Map<string, unknown[]>>();
function evaluate(expression: string, r: Res): unknown[] {
  let atom = parsed.get(expression);
  if (!atom) parsed.set(expression, (atom = parseFhirPath(expression)));
  let byExpression = evaluated.get(r);
  if (!byExpression) evaluated.set(r, (byExpression = new Map()));
  let values = byExpression.get(expression);
  if (!values) byExpression.set(expression, (values = evalFhirPath(atom, r)));
  return values;
}

const fold = (s: string) =>
  s
    .normalize('NFD')
    .replace(/\p{Mn}/gu, '')
    .toLowerCase()
    .replace(/\s+/g, ' ')
    .trim();

/** [start, end) in ms of a FHIR date, dateTime or instant at its precision; no zone means UTC. */
export function rangeOf(v: string): [number, number] | undefined {
  const m =
    /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/.exec(
      v,
    );
  if (!m) return undefined;
  const y = +m[1]!;
  if (!m[2]) return [Date.UTC(y, 0, 1), Date.UTC(y + 1, 0, 1)];
  const mo = +m[2] - 1;
  if (!m[3]) return [Date.UTC(y, mo, 1), Date.UTC(y, mo + 1, 1)];
  const d = +m[3];
  if (!m[4]) return [Date.UTC(y, mo, d), Date.UTC(y, mo, d + 1)];
  const tz = m[8];
  const off = !tz || tz === 'Z' ? 0 : (tz[0] === '-' ? -1 : 1) * (+tz.slice(1, 3) * 60 + +tz.slice(4, 6));
  const base = Date.UTC(y, mo, d, +m[4], +m[5]!, m[6] ? +m[6] : 0) - off * 60_000;
  if (!m[6]) return [base, base + 60_000];
  if (!m[7]) return [base, base + 1000];
  const ms = Math.floor(+m[7] * 1000);
  return [base + ms, base + ms + 1];
}

function targetRange(v: unknown): [number, number] | undefined {
  if (typeof v === 'string') return rangeOf(v);
  const p = v as { start?: string; end?: string } | null;
  if (p && typeof p === 'object' && ('start' in p || 'end' in p)) {
    const s = p.start ? rangeOf(p.start) : undefined;
    const e = p.end ? rangeOf(p.end) : undefined;
    return [s ? s[0] : -Infinity, e ? e[1] : Infinity];
  }
  return undefined;
}

function dateOk(prefix: string, q: [number, number], t: [number, number]): boolean {
  const [qs, qe] = q;
  const [ts, te] = t;
  const contained = qs <= ts && te <= qe;
  if (prefix === 'eq') return contained;
  if (prefix === 'ne') return !contained;
  if (prefix === 'gt') return te > qe;
  if (prefix === 'lt') return ts < qs;
  if (prefix === 'ge') return te > qe || contained;
  if (prefix === 'le') return ts < qs || contained;
  if (prefix === 'sa') return ts >= qe;
  if (prefix === 'eb') return te <= qs;
  throw new Error(`prefix ${prefix}`);
}

function strings(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (!v || typeof v !== 'object') return [];
  const o = v as Record<string, unknown>;
  return [
    'family',
    'given',
    'prefix',
    'suffix',
    'text',
    'line',
    'city',
    'district',
    'state',
    'postalCode',
    'country',
  ].flatMap((k) =>
    typeof o[k] === 'string'
      ? [o[k]]
      : Array.isArray(o[k])
        ? (o[k] as unknown[]).filter((x): x is string => typeof x === 'string')
        : [],
  );
}

function pairs(v: unknown): { system?: string; code: string }[] {
  if (typeof v === 'string' || typeof v === 'boolean') return [{ code: String(v) }];
  if (!v || typeof v !== 'object') return [];
  const o = v as { system?: string; code?: string; value?: string; coding?: unknown[] };
  if (o.coding) return o.coding.flatMap(pairs);
  if (o.code !== undefined) return [{ system: o.system, code: o.code }];
  const contact = ['phone', 'fax', 'email', 'pager', 'url', 'sms', 'other'].includes(o.system ?? '');
  if (o.value !== undefined) return [{ system: contact ? undefined : o.system, code: o.value }];
  return [];
}

function valueMatches(type: string, modifier: string | undefined, v: unknown, q: string): boolean {
  switch (type) {
    case 'string':
      return modifier === 'exact'
        ? strings(v).includes(q)
        : strings(v).some((s) => fold(s).startsWith(fold(q)));
    case 'token': {
      const bar = q.indexOf('|');
      return pairs(v).some((c) => {
        if (bar < 0) return c.code === q;
        const sys = q.slice(0, bar);
        const code = q.slice(bar + 1);
        const sysOk = sys === '' ? c.system === undefined : c.system === sys;
        return sysOk && (code === '' || c.code === code);
      });
    }
    case 'reference': {
      const ref = (v as { reference?: string } | null)?.reference;
      if (typeof ref !== 'string') return false;
      if (q.includes('/')) return ref === q || ref.endsWith(`/${q}`);
      return ref.split('/').pop() === q && (!modifier || ref.startsWith(`${modifier}/`));
    }
    case 'date': {
      const prefix = /^(eq|ne|gt|lt|ge|le|sa|eb)/.exec(q)?.[1] ?? 'eq';
      const r = rangeOf(q.slice(q.startsWith(prefix) ? 2 : 0));
      const t = targetRange(v);
      return !!r && !!t && dateOk(prefix, r, t);
    }
    default:
      throw new Error(`type ${type}`);
  }
}

/** Ids of the resources matching a query given as [key, value][] (AND over keys, OR over commas). */
export function bruteForce(resources: Res[], resourceType: string, query: [string, string][]): string[] {
  const defs = getSearchParameters(resourceType) ?? {};
  return resources
    .filter((r) => r.resourceType === resourceType)
    .filter((r) =>
      query.every(([key, value]) => {
        const [code, modifier] = key.split(':') as [string, string | undefined];
        if (code === '_id') return value.split(',').includes(r.id);
        const sp = defs[code];
        if (!sp?.expression) throw new Error(`no parameter ${code}`);
        const found = evaluate(sp.expression, r);
        return value.split(',').some((q) => found.some((v) => valueMatches(sp.type, modifier, v, q)));
      }),
    )
    .map((r) => r.id)
    .sort();
}

/**
 * A local reference as [type, id]: "Type/id", optionally versioned ("Type/id/_history/v"). Absolute URLs,
 * urn:uuid, contained ("#x") and anything else are not local (R4 references.html#literal).
 */
export function localReference(ref: string): [string, string] | undefined {
  const m = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/.exec(ref);
  return m ? [m[1]!, m[2]!] : undefined;
}

/** "Source:param[:Target]" of _include/_revinclude, with the parameter's official expression. */
function includeSpec(spec: string): { source: string; expression: string; target?: string } {
  const [source, param, target] = spec.split(':') as [string, string, string | undefined];
  const sp = (getSearchParameters(source) ?? {})[param];
  if (sp?.type !== 'reference' || !sp.expression)
    throw new Error(`no reference parameter ${source}:${param}`);
  return { source, expression: sp.expression, ...(target ? { target } : {}) };
}

/** The local references ("Type/id") a resource holds through an include parameter's expression. */
function referencesThrough(r: Res, expression: string): [string, string][] {
  return evaluate(expression, r).flatMap((v) => {
    const ref = (v as { reference?: unknown } | null)?.reference;
    const local = typeof ref === 'string' ? localReference(ref) : undefined;
    return local ? [local] : [];
  });
}

/**
 * What _include and _revinclude add to one page of matches (R4 search.html#include), as sorted
 * "Type/id" keys: for `_include=Source:param[:Target]` the existing resources that a match of type Source
 * refers to through param (of type Target if given); for `_revinclude=Source:param[:Target]` the resources
 * of type Source that refer to a match (of type Target if given) through param. A resource already on the
 * page as a match is not included again; each included resource counts once.
 */
export function includedKeys(
  resources: Res[],
  page: Res[],
  include: readonly string[],
  revinclude: readonly string[],
): string[] {
  const key = (type: string, id: string) => `${type}/${id}`;
  const exists = new Set(resources.map((r) => key(r.resourceType, r.id)));
  const onPage = new Set(page.map((r) => key(r.resourceType, r.id)));
  const out = new Set<string>();
  for (const spec of include) {
    const { source, expression, target } = includeSpec(spec);
    for (const r of page.filter((p) => p.resourceType === source))
      for (const [type, id] of referencesThrough(r, expression))
        if ((!target || target === type) && exists.has(key(type, id))) out.add(key(type, id));
  }
  for (const spec of revinclude) {
    const { source, expression, target } = includeSpec(spec);
    const wanted = new Set(
      page.filter((p) => !target || p.resourceType === target).map((p) => key(p.resourceType, p.id)),
    );
    for (const r of resources.filter((x) => x.resourceType === source))
      if (referencesThrough(r, expression).some(([type, id]) => wanted.has(key(type, id))))
        out.add(key(r.resourceType, r.id));
  }
  return [...out].filter((k) => !onPage.has(k)).sort();
}
