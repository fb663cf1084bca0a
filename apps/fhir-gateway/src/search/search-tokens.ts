import { normalizeSearchString } from '#crypto';
import { parseReference, type AnyResource } from '../fhir/resource-json.js';
import { endpointTokens, OPEN_END, OPEN_START } from './date-tokens.js';
import { idBand } from './id-bands.js';
import { numberTokens } from './number-tokens.js';
import { codings, identifierTypes, stringParts, texts } from './search-values.js';
import { indexedParams } from './search-params.js';

/**
 * String prefix lengths that are indexed. A query uses the longest indexed length not above its own and
 * re-checks the rest; fewer lengths mean fewer tokens per value (write cost) and less to learn from them.
 */
export const PREFIX_LENGTHS = [1, 2, 3, 4, 6, 8, 12, 16] as const;
/** Prefix lengths for a token's :text (displays and CodeableConcept.text): searched less, so fewer. */
export const TEXT_PREFIX_LENGTHS = [1, 3, 6, 10] as const;

export function indexedPrefix(norm: string, lengths: readonly number[] = PREFIX_LENGTHS): string {
  let len = lengths[0]!;
  for (const l of lengths) if (l <= norm.length) len = l;
  return norm.slice(0, len);
}

/**
 * String prefixes up to this length are also indexed per id band (id-bands.ts): they are the prefixes that
 * match many resources, where reading a page in id order pays for every match.
 */
export const BANDED_PREFIX_MAX = 4;

/** "p|prefix" of a short prefix, as its token in one id band: "P|<band in hex>|prefix". */
export function bandedToken(band: number, prefixToken: string): string {
  return `P|${band.toString(16)}|${prefixToken.slice(2)}`;
}

/** Whether a plaintext token is a string prefix short enough to have id-band tokens. */
export function isBandable(token: string): boolean {
  return token.startsWith('p|') && token.length - 2 <= BANDED_PREFIX_MAX;
}

/** The token every parameter with at least one value carries, for :missing (R4 search.html#modifiers). */
export const PRESENT = '?';

export interface PlainToken {
  param: string;
  value: string;
}

/**
 * The plaintext tokens of a resource, one list per indexed search parameter, before they are keyed and
 * hashed into blind indexes. Token spellings (the query side in search-query.ts must use the same):
 *   any:       "?" when the parameter has a value
 *   token:     "c|code", "s|system|code", "s|system|", "n|code" (value without system),
 *              "t|prefix" of displays and texts (:text), "o|typeSystem|typeCode|value" (:of-type)
 *   string:    "p|prefix" for the normalised prefixes of PREFIX_LENGTHS, "x|exact value", and
 *              "P|band|prefix" for the prefixes up to BANDED_PREFIX_MAX, in the resource's id band
 *   reference: "r|Type/id", "i|id", "u|url"; with Reference.identifier "dc|value", "ds|system|value",
 *              "dn|value" (:identifier)
 *   uri:       "u|uri", and "b|prefix" for each path-segment prefix (:below)
 *   date:      see date-tokens.ts
 *   number:    "#|bucket", see number-tokens.ts
 *   quantity:  "#|bucket", "c|code|bucket" (unit code and unit text), "s|system|code|bucket"
 *   composite: none of its own: a composite is narrowed through its components' parameters
 */
export function extractTokens(resource: AnyResource): PlainToken[] {
  const out = new Map<string, PlainToken>();
  const band = resource.id ? idBand(resource.id) : undefined;
  for (const p of indexedParams(resource.resourceType).values()) {
    if (p.type === 'composite') continue;
    let values: unknown[];
    try {
      values = p.expr.evaluate(resource);
    } catch {
      continue;
    }
    let present = false;
    for (const v of values) {
      for (const t of valueTokens(p.type, v)) {
        present = true;
        out.set(`${p.code}\u0000${t}`, { param: p.code, value: t });
        if (band !== undefined && isBandable(t)) {
          const b = bandedToken(band, t);
          out.set(`${p.code}\u0000${b}`, { param: p.code, value: b });
        }
      }
    }
    if (present) out.set(`${p.code}\u0000${PRESENT}`, { param: p.code, value: PRESENT });
  }
  return [...out.values()];
}

/**
 * Does a value give the parameter a value (R4 search.html#modifiers, :missing)? Exactly when it has index
 * tokens, so the presence token and the re-check agree; a composite has none of its own and counts any
 * element its expression yields.
 */
export function searchable(type: string, v: unknown): boolean {
  return type === 'composite' || valueTokens(type, v).length > 0;
}

/** The tokens of one value of a parameter of this type (none: the value is not searchable). */
export function valueTokens(type: string, v: unknown): string[] {
  switch (type) {
    case 'token':
      return tokenTokens(v);
    case 'string':
      return stringTokens(v);
    case 'reference':
      return referenceTokens(v);
    case 'uri':
      return typeof v === 'string' ? uriTokens(v) : [];
    case 'date':
      return dateTokens(v);
    case 'number':
      return typeof v === 'number' ? numberTokens(v).map((b) => `#|${b}`) : [];
    case 'quantity':
      return quantityTokens(v);
    default:
      return []; // composite: narrowed through its components' own parameters
  }
}

export function codeTokens(prefix: '' | 'd', system: string | undefined, code: string | undefined): string[] {
  if (code === undefined || code === '') return system ? [`${prefix}s|${system}|`] : [];
  return system
    ? [`${prefix}c|${code}`, `${prefix}s|${system}|${code}`, `${prefix}s|${system}|`]
    : [`${prefix}c|${code}`, `${prefix}n|${code}`];
}

function tokenTokens(v: unknown): string[] {
  const out = codings(v).flatMap((c) => codeTokens('', c.system, c.code));
  for (const text of texts(v)) {
    const norm = normalizeSearchString(text);
    for (const l of TEXT_PREFIX_LENGTHS) if (l <= norm.length) out.push(`t|${norm.slice(0, l)}`);
  }
  for (const ident of identifierTypes(v))
    for (const t of ident.types) if (t.system && t.code) out.push(`o|${t.system}|${t.code}|${ident.value}`);
  return out;
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
  if (typeof v === 'string') return uriTokens(v);
  const o = v as { reference?: unknown; identifier?: unknown } | null;
  const out: string[] = [];
  if (typeof o?.reference === 'string') {
    const local = parseReference(o.reference);
    out.push(...(local ? [`r|${local.type}/${local.id}`, `i|${local.id}`] : [`u|${o.reference}`]));
  }
  for (const c of codings(o?.identifier)) out.push(...codeTokens('d', c.system, c.code));
  return out;
}

/** "u|uri", and "b|" for the uri and each prefix of it that ends before a "/" past the scheme. */
export function uriTokens(uri: string): string[] {
  const out = [`u|${uri}`, `b|${uri.replace(/\/+$/, '')}`];
  const from = uri.indexOf('://') >= 0 ? uri.indexOf('://') + 3 : 0;
  for (let i = uri.indexOf('/', from); i > 0; i = uri.indexOf('/', i + 1)) out.push(`b|${uri.slice(0, i)}`);
  return [...new Set(out)];
}

function quantityTokens(v: unknown): string[] {
  const q = v as { value?: unknown; system?: unknown; code?: unknown; unit?: unknown } | null;
  if (!q || typeof q !== 'object' || typeof q.value !== 'number') return [];
  const out: string[] = [];
  for (const b of numberTokens(q.value)) {
    out.push(`#|${b}`);
    for (const unit of new Set([q.code, q.unit])) if (typeof unit === 'string') out.push(`c|${unit}|${b}`);
    if (typeof q.system === 'string' && typeof q.code === 'string') out.push(`s|${q.system}|${q.code}|${b}`);
  }
  return out;
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
