import { evalFhirPath } from '@medplum/core';
import { normalizeSearchString } from '#crypto';
import { parseReference, type AnyResource } from '../fhir/resource-json.js';
import { endpointTokens, OPEN_END, OPEN_START } from './date-tokens.js';
import { codings, stringParts } from './search-criteria.js';
import { indexedParams, type IndexedParam } from './search-params.js';

/**
 * String prefix lengths that are indexed. A query uses the longest indexed length not above its own and
 * re-checks the rest; fewer lengths mean fewer tokens per value (write cost) and less to learn from them.
 */
export const PREFIX_LENGTHS = [1, 2, 3, 4, 6, 8, 12, 16] as const;

export function indexedPrefix(norm: string): string {
  let len: number = PREFIX_LENGTHS[0];
  for (const l of PREFIX_LENGTHS) if (l <= norm.length) len = l;
  return norm.slice(0, len);
}

export interface PlainToken {
  param: string;
  value: string;
}

/**
 * The plaintext tokens of a resource, one list per indexed search parameter, before they are keyed and
 * hashed into blind indexes. Token spellings (must match the query side in search-query.ts):
 *   token:     "c|code", "s|system|code", "s|system|", "n|code" (value without system)
 *   string:    "p|prefix" for the normalised prefixes of PREFIX_LENGTHS, "x|exact value"
 *   reference: "r|Type/id", "i|id", "u|url"
 *   uri:       "u|uri"
 *   date:      see date-tokens.ts
 */
export function extractTokens(resource: AnyResource): PlainToken[] {
  const out = new Map<string, PlainToken>();
  for (const p of indexedParams(resource.resourceType).values()) {
    let values: unknown[];
    try {
      values = evalFhirPath(p.atom, resource);
    } catch {
      continue;
    }
    for (const v of values)
      for (const t of valueTokens(p, v)) out.set(`${p.code}\u0000${t}`, { param: p.code, value: t });
  }
  return [...out.values()];
}

function valueTokens(p: IndexedParam, v: unknown): string[] {
  switch (p.type) {
    case 'token':
      return tokenTokens(v);
    case 'string':
      return stringTokens(v);
    case 'reference':
      return referenceTokens(v);
    case 'uri':
      return typeof v === 'string' ? [`u|${v}`] : [];
    case 'date':
      return dateTokens(v);
  }
}

function codeTokens(system: string | undefined, code: string | undefined): string[] {
  if (code === undefined || code === '') return system ? [`s|${system}|`] : [];
  return system ? [`c|${code}`, `s|${system}|${code}`, `s|${system}|`] : [`c|${code}`, `n|${code}`];
}

function tokenTokens(v: unknown): string[] {
  return codings(v).flatMap((c) => codeTokens(c.system, c.code));
}

function stringTokens(v: unknown): string[] {
  const out: string[] = [];
  for (const raw of stringParts(v)) {
    out.push(`x|${raw}`);
    const norm = normalizeSearchString(raw);
    for (const l of PREFIX_LENGTHS) if (l <= norm.length) out.push(`p|${norm.slice(0, l)}`);
  }
  return out;
}

function referenceTokens(v: unknown): string[] {
  if (typeof v === 'string') return [`u|${v}`];
  const ref = (v as { reference?: unknown } | null)?.reference;
  if (typeof ref !== 'string') return [];
  const local = parseReference(ref);
  return local ? [`r|${local.type}/${local.id}`, `i|${local.id}`] : [`u|${ref}`];
}

function dateTokens(v: unknown): string[] {
  if (typeof v === 'string') return endpointTokens(v);
  if (v && typeof v === 'object') {
    const o = v as { start?: string; end?: string; event?: string[] };
    if ('start' in o || 'end' in o) {
      return [
        ...(o.start ? endpointTokens(o.start) : [OPEN_START]),
        ...(o.end ? endpointTokens(o.end) : [OPEN_END]),
      ];
    }
    if (Array.isArray(o.event))
      return o.event.flatMap((e) => (typeof e === 'string' ? endpointTokens(e) : []));
  }
  return [];
}
