import { evalFhirPath, type FhirPathAtom } from '@medplum/core';
import { normalizeSearchString } from '#crypto';
import { parseReference, type AnyResource } from '../fhir/resource-json.js';
import { parseDateRange } from '../fhir/fhir-date.js';

/**
 * Parsed search criteria and their exact evaluation on a decrypted resource (R4 search.html). This is the
 * re-check that removes blind-index false positives, so it implements the FHIR semantics itself rather
 * than trusting the index: string starts-with (case and accent insensitive), token system/code forms,
 * references by type and id, and date ranges at their precision with every prefix.
 */
export type DatePrefix = 'eq' | 'ne' | 'gt' | 'lt' | 'ge' | 'le' | 'sa' | 'eb';

export type ParsedValue =
  | { kind: 'string'; norm: string; raw: string; exact: boolean }
  | { kind: 'token'; system?: string; code?: string }
  | { kind: 'reference'; type?: string; id?: string; url?: string }
  | { kind: 'uri'; uri: string }
  | { kind: 'date'; prefix: DatePrefix; start: number; end: number };

export interface Criterion {
  code: string;
  expression: string | FhirPathAtom;
  /** OR over these values. */
  values: ParsedValue[];
}

/** True when every criterion (AND) has some value of the resource matching one of its values (OR). */
export function matchesAll(resource: AnyResource, criteria: readonly Criterion[]): boolean {
  return criteria.every((c) => {
    let found: unknown[];
    try {
      found = evalFhirPath(c.expression, resource);
    } catch {
      return false;
    }
    return found.some((v) => c.values.some((q) => matchValue(v, q)));
  });
}

function matchValue(v: unknown, q: ParsedValue): boolean {
  switch (q.kind) {
    case 'string':
      return stringParts(v).some((s) =>
        q.exact ? s === q.raw : normalizeSearchString(s).startsWith(q.norm),
      );
    case 'token':
      return codings(v).some(
        (c) =>
          (q.code === undefined || c.code === q.code) &&
          (q.system === undefined || (q.system === '' ? c.system === undefined : c.system === q.system)),
      );
    case 'reference': {
      if (typeof v === 'string') return q.url !== undefined && v === q.url;
      const ref = (v as { reference?: unknown } | null)?.reference;
      if (typeof ref !== 'string') return false;
      if (q.url !== undefined) return ref === q.url;
      const local = parseReference(ref);
      return !!local && local.id === q.id && (q.type === undefined || local.type === q.type);
    }
    case 'uri':
      return v === q.uri;
    case 'date': {
      const r = dateRange(v);
      return r !== undefined && dateMatches(q.prefix, q.start, q.end, r.start, r.end);
    }
  }
}

/** R4 search.html#prefix on a search range [vs, ve) and a target range [ts, te). */
export function dateMatches(prefix: DatePrefix, vs: number, ve: number, ts: number, te: number): boolean {
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
  }
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
    return { start: s?.start ?? -Infinity, end: e?.end ?? Infinity };
  }
  return undefined;
}

const CONTACT_SYSTEMS = new Set(['phone', 'fax', 'email', 'pager', 'url', 'sms', 'other']);

export function codings(v: unknown): { system?: string; code?: string }[] {
  if (typeof v === 'string' || typeof v === 'boolean' || typeof v === 'number') return [{ code: String(v) }];
  if (v === null || typeof v !== 'object') return [];
  const o = v as { system?: string; code?: string; value?: string; coding?: unknown[] };
  if (Array.isArray(o.coding)) return o.coding.flatMap((c) => codings(c));
  if (o.code !== undefined) return [{ system: o.system, code: o.code }];
  if (o.value !== undefined)
    return [{ system: CONTACT_SYSTEMS.has(o.system ?? '') ? undefined : o.system, code: o.value }];
  return [];
}

const STRING_PARTS = [
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
];

export function stringParts(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (!v || typeof v !== 'object') return [];
  const o = v as Record<string, unknown>;
  const out: string[] = [];
  for (const k of STRING_PARTS) {
    const x = o[k];
    if (typeof x === 'string') out.push(x);
    else if (Array.isArray(x)) for (const y of x) if (typeof y === 'string') out.push(y);
  }
  return out;
}
