import { normalizeSearchString } from '#crypto';
import { parseReference, type AnyResource } from '../fhir/resource-json.js';
import { parseDateRange } from '../fhir/fhir-date.js';
import type { ParamExpression } from './param-expression.js';
import { searchable } from './search-tokens.js';
import { codings, identifierTypes, stringParts, texts } from './search-values.js';

/**
 * Parsed search criteria and their exact evaluation on a decrypted resource (R4 search.html). This is the
 * re-check that removes blind-index false positives, so it implements the FHIR semantics itself rather
 * than trusting the index: string starts-with (case and accent insensitive), token system/code forms,
 * references by type and id, implicit ranges of dates and numbers with every prefix, quantities with
 * units, composites on one element, and the :missing, :not, :text, :of-type, :identifier, :above and
 * :below modifiers.
 */
export type Prefix = 'eq' | 'ne' | 'gt' | 'lt' | 'ge' | 'le' | 'sa' | 'eb' | 'ap';

export type ParsedValue =
  | { kind: 'string'; norm: string; raw: string; mode: 'prefix' | 'exact' | 'contains' }
  | { kind: 'token'; system?: string; code?: string }
  | { kind: 'text'; norm: string }
  | { kind: 'of-type'; system: string; code: string; value: string }
  | { kind: 'reference'; type?: string; id?: string; url?: string }
  | { kind: 'ref-identifier'; system?: string; value?: string }
  | { kind: 'uri'; uri: string; mode: 'eq' | 'below' | 'above' }
  | { kind: 'date'; prefix: Prefix; start: number; end: number; now?: number }
  | { kind: 'number'; prefix: Prefix; value: number; lo: number; hi: number }
  | {
      kind: 'quantity';
      prefix: Prefix;
      value: number;
      lo: number;
      hi: number;
      system?: string;
      code?: string;
    }
  | { kind: 'composite'; parts: ParsedValue[] };

export interface Criterion {
  code: string;
  expression: ParamExpression;
  /** OR over these values. */
  values: ParsedValue[];
  /** :not (R4 search.html#modifiers): no value of the resource matches any of the values. */
  negate?: boolean;
  /** :missing=true / false: the parameter has no value / has some value; values is then empty. */
  missing?: boolean;
  /** Composite parameters: the component expressions, relative to each element the expression yields. */
  components?: ParamExpression[];
}

/** True when every criterion (AND) holds. */
export function matchesAll(resource: AnyResource, criteria: readonly Criterion[]): boolean {
  return criteria.every((c) => matchesCriterion(resource, c));
}

export function matchesCriterion(resource: AnyResource, c: Criterion): boolean {
  let found: unknown[];
  try {
    found = c.expression.evaluate(resource);
  } catch {
    found = [];
  }
  // A parameter has a value when a value it yields is searchable: the index's presence token means the
  // same, so a Reference with only a display is missing for both.
  if (c.missing !== undefined) return c.missing === !found.some((v) => searchable(c.expression.type, v));
  const any = c.components
    ? found.some((el) =>
        c.values.some((q) => q.kind === 'composite' && compositeMatches(resource, el, c.components!, q)),
      )
    : found.some((v) => c.values.some((q) => matchValue(v, q)));
  return c.negate ? !any : any;
}

/** A composite matches when one element satisfies every component (R4 search.html#composite). */
function compositeMatches(
  resource: AnyResource,
  element: unknown,
  components: readonly ParamExpression[],
  q: { parts: ParsedValue[] },
): boolean {
  return components.every((expr, i) => {
    let values: unknown[];
    try {
      // Components are evaluated on an element (a resource or a backbone element), with %resource bound to
      // the resource (MolecularSequence's "%resource.referenceSeq.chromosome").
      values = expr.evaluate(element, resource);
    } catch {
      return false;
    }
    const part = q.parts[i];
    return part !== undefined && values.some((v) => matchValue(v, part));
  });
}

export function matchValue(v: unknown, q: ParsedValue): boolean {
  switch (q.kind) {
    case 'string':
      return stringParts(v).some((s) => {
        if (q.mode === 'exact') return s === q.raw;
        const norm = normalizeSearchString(s);
        return q.mode === 'contains' ? norm.includes(q.norm) : norm.startsWith(q.norm);
      });
    case 'token':
      return codings(v).some(
        (c) =>
          (q.code === undefined || c.code === q.code) &&
          (q.system === undefined || (q.system === '' ? c.system === undefined : c.system === q.system)),
      );
    case 'text':
      return texts(v).some((t) => normalizeSearchString(t).startsWith(q.norm));
    case 'of-type':
      return identifierTypes(v).some(
        (t) => t.value === q.value && t.types.some((c) => c.system === q.system && c.code === q.code),
      );
    case 'reference': {
      if (typeof v === 'string') return q.url !== undefined && v === q.url;
      const ref = (v as { reference?: unknown } | null)?.reference;
      if (typeof ref !== 'string') return false;
      if (q.url !== undefined) return ref === q.url;
      const local = parseReference(ref);
      return !!local && local.id === q.id && (q.type === undefined || local.type === q.type);
    }
    case 'ref-identifier': {
      const ident = (v as { identifier?: unknown } | null)?.identifier;
      return codings(ident).some(
        (c) =>
          c.code === q.value &&
          (q.system === undefined || (q.system === '' ? c.system === undefined : c.system === q.system)),
      );
    }
    case 'uri': {
      const s = typeof v === 'string' ? v : (v as { reference?: unknown } | null)?.reference;
      if (typeof s !== 'string') return false;
      if (q.mode === 'eq') return s === q.uri;
      if (q.mode === 'below') return s === q.uri || s.startsWith(`${q.uri.replace(/\/+$/, '')}/`);
      return q.uri === s || q.uri.startsWith(`${s.replace(/\/+$/, '')}/`);
    }
    case 'date': {
      const r = dateRange(v);
      return r !== undefined && dateMatches(q.prefix, q.start, q.end, r.start, r.end, q.now);
    }
    case 'number': {
      const n = numericValue(v);
      return n !== undefined && numberMatches(q, n);
    }
    case 'quantity': {
      const quantity = v as { value?: unknown; system?: unknown; code?: unknown; unit?: unknown } | null;
      if (!quantity || typeof quantity !== 'object' || typeof quantity.value !== 'number') return false;
      if (q.system !== undefined && q.system !== '' && quantity.system !== q.system) return false;
      if (q.code !== undefined && q.code !== '') {
        // "5.4||mg" matches the unit code or the human-readable unit; "5.4|system|mg" the code only.
        const units = q.system ? [quantity.code] : [quantity.code, quantity.unit];
        if (!units.includes(q.code)) return false;
      }
      return numberMatches(q, quantity.value);
    }
    case 'composite':
      return false; // only meaningful per element, see compositeMatches
  }
}

/**
 * R4 search.html#prefix on a search range [vs, ve) and a target range [ts, te). "ap" widens the search
 * range by 10% of its distance from now (the spec's suggestion) and matches targets that overlap it.
 */
export function dateMatches(
  prefix: Prefix,
  vs: number,
  ve: number,
  ts: number,
  te: number,
  now = Date.now(),
): boolean {
  const eq = ts >= vs && te <= ve;
  switch (prefix) {
    case 'eq':
      return eq;
    case 'ne':
      return !eq;
    case 'gt':
      return te > ve;
    case 'lt':
      return ts < vs;
    case 'ge':
      return te > ve || eq;
    case 'le':
      return ts < vs || eq;
    case 'sa':
      return ts >= ve;
    case 'eb':
      return te <= vs;
    case 'ap': {
      const [ws, we] = approximateWindow(vs, ve, now);
      return ts < we && te > ws;
    }
  }
}

/** The "ap" window of a date range: widened on each side by 10% of the gap between now and that side. */
export function approximateWindow(vs: number, ve: number, now: number): [number, number] {
  return [vs - Math.abs(now - vs) * 0.1, ve + Math.abs(now - ve) * 0.1];
}

/**
 * Numbers (R4 search.html#number): "eq", "ne" and "ap" use the implicit range of the search value's
 * precision [lo, hi) ("100" is 99.5 to 100.5), and "ap" also admits anything within 10% of the value; the
 * ordering prefixes compare with the value as written, as HAPI and Medplum do. Stored values are points.
 */
export function numberMatches(
  q: { prefix: Prefix; value: number; lo: number; hi: number },
  n: number,
): boolean {
  switch (q.prefix) {
    case 'eq':
      return n >= q.lo && n < q.hi;
    case 'ne':
      return !(n >= q.lo && n < q.hi);
    case 'gt':
    case 'sa':
      return n > q.value;
    case 'lt':
    case 'eb':
      return n < q.value;
    case 'ge':
      return n >= q.value;
    case 'le':
      return n <= q.value;
    case 'ap': {
      const [lo, hi] = approximateNumber(q);
      return n >= lo && n <= hi;
    }
  }
}

export function approximateNumber(q: { value: number; lo: number; hi: number }): [number, number] {
  const d = Math.abs(q.value) * 0.1;
  return [Math.min(q.lo, q.value - d), Math.max(q.hi, q.value + d)];
}

function numericValue(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  const o = v as { value?: unknown } | null;
  return o && typeof o === 'object' && typeof o.value === 'number' ? o.value : undefined;
}

function dateRange(v: unknown): { start: number; end: number } | undefined {
  const one = (s: string) => {
    try {
      const r = parseDateRange(s, 'value');
      return { start: Date.parse(r.start), end: Date.parse(r.end) };
    } catch {
      return undefined;
    }
  };
  if (typeof v === 'string') return one(v);
  const p = v as { start?: string; end?: string } | null;
  if (p && typeof p === 'object' && ('start' in p || 'end' in p)) {
    const s = p.start ? one(p.start) : undefined;
    const e = p.end ? one(p.end) : undefined;
    if ((p.start && !s) || (p.end && !e)) return undefined;
    // An inverted Period breaks R4 invariant per-1 and has no instants: it matches no date search (the
    // index, built from its endpoints, could not find it consistently anyway).
    if (s && e && s.start > e.end) return undefined;
    return { start: s?.start ?? -Infinity, end: e?.end ?? Infinity };
  }
  return undefined;
}
