/**
 * The plaintext search index of the baseline (issue #3): what a server without encryption would keep for the
 * same R4 search parameters the gateway indexes, in the same Postgres. One row per value:
 *   bench_plain_token (resource_type, param, value, id)   token "system|code" and "code", string values
 *                                                          normalised (prefix search by btree range),
 *                                                          references "Type/id", uris
 *   bench_plain_date  (resource_type, param, lo, hi, id)  date ranges as typed timestamps
 *   bench_plain_number (resource_type, param, value, unit, id)  numbers and quantities
 * plus "param:text" rows for the display texts of tokens and one "a$b" row per composite element,
 * and the resources' JSON in bench_plain_resource, served as stored.
 */
import { normalizeSearchString } from '#crypto';
import { parseDateRange } from '../../apps/fhir-gateway/src/fhir/fhir-date.js';
import { parseReference } from '../../apps/fhir-gateway/src/fhir/resource-json.js';
import { codings, stringParts } from '../../apps/fhir-gateway/src/search/search-values.js';
import { indexedParams } from '../../apps/fhir-gateway/src/search/search-params.js';
import type { Sql } from '../../apps/fhir-gateway/src/database/database.js';

export const PLAIN_SCHEMA = `
CREATE TABLE IF NOT EXISTS bench_plain_resource (
  resource_type text NOT NULL, id text NOT NULL, content bytea NOT NULL, PRIMARY KEY (resource_type, id));
CREATE TABLE IF NOT EXISTS bench_plain_token (
  resource_type text NOT NULL, param text NOT NULL, value text COLLATE "C" NOT NULL, id text NOT NULL);
CREATE TABLE IF NOT EXISTS bench_plain_date (
  resource_type text NOT NULL, param text NOT NULL, lo timestamptz NOT NULL, hi timestamptz NOT NULL,
  id text NOT NULL);
CREATE TABLE IF NOT EXISTS bench_plain_number (
  resource_type text NOT NULL, param text NOT NULL, value numeric NOT NULL, unit text NOT NULL,
  id text NOT NULL);
`;
/** Built after the bulk load, as one would. */
export const PLAIN_INDEXES = `
CREATE INDEX IF NOT EXISTS bench_plain_token_value ON bench_plain_token (resource_type, param, value, id);
CREATE INDEX IF NOT EXISTS bench_plain_date_hi ON bench_plain_date (resource_type, param, hi, lo, id);
CREATE INDEX IF NOT EXISTS bench_plain_number_value ON bench_plain_number (resource_type, param, value, id);
`;
export const PLAIN_INDEX_TABLES = ['bench_plain_token', 'bench_plain_date', 'bench_plain_number'];

export interface PlainRows {
  tokens: { type: string; param: string; value: string; id: string }[];
  dates: { type: string; param: string; lo: string; hi: string; id: string }[];
  numbers: { type: string; param: string; value: number; unit: string; id: string }[];
}

export function plainRows(
  resource: Record<string, unknown> & { resourceType: string; id: string },
): PlainRows {
  const out: PlainRows = { tokens: [], dates: [], numbers: [] };
  const seen = new Set<string>();
  const tok = (param: string, value: string) => {
    const k = `${param}\u0000${value}`;
    if (seen.has(k)) return;
    seen.add(k);
    out.tokens.push({ type: resource.resourceType, param, value, id: resource.id });
  };
  const params = [...indexedParams(resource.resourceType).values()];
  const byUrl = new Map(params.map((p) => [p.url, p]));
  const valuesOf = (code: string, kind: string, v: unknown): string[] => {
    switch (kind) {
      case 'token':
        return codings(v).flatMap((c) =>
          c.code === undefined ? [] : c.system ? [c.code, `${c.system}|${c.code}`] : [c.code],
        );
      case 'string':
        return stringParts(v).map((x) => normalizeSearchString(x));
      case 'reference': {
        const ref = typeof v === 'string' ? v : (v as { reference?: unknown } | null)?.reference;
        if (typeof ref !== 'string') return [];
        const local = parseReference(ref);
        return [local ? `${local.type}/${local.id}` : ref];
      }
      case 'uri':
        return typeof v === 'string' ? [v] : [];
      case 'number':
      case 'quantity': {
        const q = quantity(v);
        if (!q) return [];
        out.numbers.push({
          type: resource.resourceType,
          param: code,
          value: q.value,
          unit: q.unit,
          id: resource.id,
        });
        return [];
      }
      case 'date': {
        const r = dateRange(v);
        if (r) out.dates.push({ type: resource.resourceType, param: code, ...r, id: resource.id });
        return [];
      }
      default:
        return [];
    }
  };
  for (const p of params) {
    let values: unknown[];
    try {
      values = p.expr.evaluate(resource);
    } catch {
      continue;
    }
    // Switch on a plain string: the gateway's set of indexed types grows.
    const kind: string = p.type;
    for (const v of values) {
      if (kind === 'composite') {
        // One row per element: its components' first values joined by "$" (R4 search.html#composite).
        const comps = p.components ?? [];
        const parts = comps.map((c) => {
          const def = byUrl.get(c.definition);
          const found = c.expr.evaluate(v, resource);
          const x = found[0];
          if (!def || x === undefined) return '';
          const q = def.type === 'quantity' || (def.type as string) === 'number' ? quantity(x) : undefined;
          return q ? String(q.value) : (valuesOf(def.code, 'token', x).pop() ?? '');
        });
        if (parts.every((x) => x !== '')) tok(p.code, parts.join('$'));
        continue;
      }
      for (const x of valuesOf(p.code, kind, v)) tok(p.code, x);
      // A token's :text (display and CodeableConcept.text), as the gateway indexes them too.
      if (kind === 'token') for (const t of displayTexts(v)) tok(`${p.code}:text`, t);
    }
  }
  return out;
}

function quantity(v: unknown): { value: number; unit: string } | undefined {
  if (typeof v === 'number') return { value: v, unit: '' };
  const q = v as { value?: unknown; system?: string; code?: string; unit?: string } | null;
  if (!q || typeof q !== 'object' || typeof q.value !== 'number') return undefined;
  return { value: q.value, unit: q.code ? `${q.system ?? ''}|${q.code}` : (q.unit ?? '') };
}

function displayTexts(v: unknown): string[] {
  if (!v || typeof v !== 'object') return [];
  const o = v as { text?: unknown; display?: unknown; coding?: { display?: unknown }[] };
  const xs = [o.text, o.display, ...(Array.isArray(o.coding) ? o.coding.map((c) => c.display) : [])];
  return xs.filter((x): x is string => typeof x === 'string').map((x) => normalizeSearchString(x));
}

function dateRange(v: unknown): { lo: string; hi: string } | undefined {
  const one = (s: string) => {
    try {
      return parseDateRange(s, 'value');
    } catch {
      return undefined;
    }
  };
  if (typeof v === 'string') {
    const r = one(v);
    return r && { lo: r.start, hi: r.end };
  }
  const p = v as { start?: string; end?: string } | null;
  if (p && typeof p === 'object' && ('start' in p || 'end' in p)) {
    const s = p.start ? one(p.start) : undefined;
    const e = p.end ? one(p.end) : undefined;
    return { lo: s?.start ?? '-infinity', hi: e?.end ?? 'infinity' };
  }
  return undefined;
}

/** Inserts resources (as stored bytes) and their plaintext index rows, a few statements per batch. */
export async function insertPlain(
  sql: Sql,
  batch: { resource: Record<string, unknown> & { resourceType: string; id: string }; json: Buffer }[],
): Promise<void> {
  const rows: PlainRows = { tokens: [], dates: [], numbers: [] };
  for (const b of batch) {
    const r = plainRows(b.resource);
    rows.tokens.push(...r.tokens);
    rows.dates.push(...r.dates);
    rows.numbers.push(...r.numbers);
  }
  await sql.query(
    `INSERT INTO bench_plain_resource (resource_type, id, content)
     SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])`,
    [batch.map((b) => b.resource.resourceType), batch.map((b) => b.resource.id), batch.map((b) => b.json)],
  );
  await sql.query(
    `INSERT INTO bench_plain_token (resource_type, param, value, id)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])`,
    [
      rows.tokens.map((t) => t.type),
      rows.tokens.map((t) => t.param),
      rows.tokens.map((t) => t.value),
      rows.tokens.map((t) => t.id),
    ],
  );
  await sql.query(
    `INSERT INTO bench_plain_date (resource_type, param, lo, hi, id)
     SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::text[])`,
    [
      rows.dates.map((t) => t.type),
      rows.dates.map((t) => t.param),
      rows.dates.map((t) => t.lo),
      rows.dates.map((t) => t.hi),
      rows.dates.map((t) => t.id),
    ],
  );
  await sql.query(
    `INSERT INTO bench_plain_number (resource_type, param, value, unit, id)
     SELECT * FROM unnest($1::text[], $2::text[], $3::numeric[], $4::text[], $5::text[])`,
    [
      rows.numbers.map((t) => t.type),
      rows.numbers.map((t) => t.param),
      rows.numbers.map((t) => t.value),
      rows.numbers.map((t) => t.unit),
      rows.numbers.map((t) => t.id),
    ],
  );
}
