/**
 * What a search reads from a value an expression yields (R4 search.html): the system/code pairs a token
 * matches, the texts :text searches, identifier types for :of-type, and the parts of a string parameter.
 * The index (search-tokens.ts) and the re-check (search-criteria.ts) both read values through these, so the
 * two cannot disagree on what a value holds.
 */
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

/**
 * The text a token's :text modifier searches (R4 search.html#modifiers): CodeableConcept.text, the
 * display of each Coding, and an Identifier's type text.
 */
export function texts(v: unknown): string[] {
  if (v === null || typeof v !== 'object') return [];
  const o = v as { text?: unknown; display?: unknown; coding?: unknown[]; type?: unknown };
  const out: string[] = [];
  if (typeof o.text === 'string') out.push(o.text);
  if (typeof o.display === 'string') out.push(o.display);
  if (Array.isArray(o.coding)) out.push(...o.coding.flatMap((c) => texts(c)));
  if (o.type && typeof o.type === 'object') {
    const t = (o.type as { text?: unknown }).text;
    if (typeof t === 'string') out.push(t);
  }
  return out;
}

/** Identifier.type codings with the identifier value, for :of-type (R4 search.html#modifiers). */
export function identifierTypes(
  v: unknown,
): { value: string; types: { system?: string; code?: string }[] }[] {
  const o = v as { value?: unknown; type?: { coding?: unknown[] } } | null;
  if (!o || typeof o !== 'object' || typeof o.value !== 'string' || !Array.isArray(o.type?.coding)) return [];
  return [{ value: o.value, types: o.type.coding.flatMap((c) => codings(c)) }];
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
