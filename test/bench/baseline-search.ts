import type { FastifyInstance } from 'fastify';
import { normalizeSearchString } from '#crypto';
import type { Sql } from '../../apps/fhir-gateway/src/database/database.js';
import { parseDateRange } from '../../apps/fhir-gateway/src/fhir/fhir-date.js';
import { indexedParams } from '../../apps/fhir-gateway/src/search/search-params.js';

/**
 * The baseline of the search suite: the same searches answered from the plaintext index of the same data
 * (plain-index.ts), with no encryption, no re-check, no auth, no FHIR engine. It handles what the scenarios
 * send: token, string (prefix), reference and date (eq/ge/gt/le/lt) parameters, one level of chaining
 * (`subject:Patient.identifier=`, `subject.family=`), `_revinclude=Source:param`, `_count`, `_total` and
 * an id cursor, and answers with a searchset Bundle whose resources are the stored bytes, in id order as
 * the gateway pages.
 *   GET /plain/search/:type?...
 */
export function registerPlainSearch(app: FastifyInstance, sql: Sql): void {
  app.get<{ Params: { type: string } }>('/plain/search/:type', async (req, reply) => {
    const base = `http://${req.headers.host ?? '127.0.0.1'}/plain/search`;
    const type = req.params.type;
    const query = new URLSearchParams(req.url.split('?')[1] ?? '');
    const params: unknown[] = [type];
    const p = (v: unknown) => `$${params.push(v)}`;
    const where: string[] = [];
    let count = 20;
    let cursor: string | undefined;
    let total = false;
    const revinclude: { source: string; param: string }[] = [];
    const echo = new URLSearchParams();
    for (const [key, raw] of query) {
      if (key === '_count') count = Number(raw);
      else if (key === '_cursor') cursor = raw;
      else if (key === '_total') total = raw === 'accurate';
      else if (key === '_revinclude') {
        const [source, param] = raw.split(':');
        revinclude.push({ source: source!, param: param! });
      } else {
        const chain = /^([a-z-]+)(?::([A-Z][A-Za-z]+))?\.([a-z-]+)$/.exec(key);
        if (chain) {
          // ref param, target type (from the modifier or the param's single target), target param
          const [, ref, target = 'Patient', targetParam] = chain;
          const inner = condition(target, targetParam!, undefined, raw, p, `${p(target)}::text`);
          where.push(`SELECT t.id FROM (${inner}) c JOIN bench_plain_token t ON t.resource_type = $1
            AND t.param = ${p(ref)} AND t.value = ${p(`${target}/`)} || c.id`);
        } else {
          const [code, modifier] = key.split(':');
          where.push(condition(type, code!, modifier, raw, p, '$1'));
        }
      }
      if (key !== '_cursor') echo.append(key, raw);
    }
    // Ids first: the intersection of the conditions in the index, paged by id; then the page's resources.
    const matching = where.length
      ? where.join(' INTERSECT ')
      : 'SELECT id FROM bench_plain_resource WHERE resource_type = $1';
    const totalSql = total
      ? (await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM (${matching}) m`, params)).rows[0]!.n
      : undefined;
    const after = cursor !== undefined ? `WHERE m.id > ${p(cursor)}` : '';
    const { rows } = await sql.query<{ id: string; content: Uint8Array }>(
      `SELECT r.id, r.content
         FROM (SELECT m.id FROM (${matching}) m ${after} ORDER BY m.id LIMIT ${p(count + 1)}) m
         JOIN bench_plain_resource r ON r.resource_type = $1 AND r.id = m.id
        ORDER BY r.id`,
      params,
    );
    const page = rows.slice(0, count);
    const entries = page.map(
      (r) =>
        `{"fullUrl":"${base}/${type}/${r.id}","resource":${Buffer.from(r.content).toString('utf8')},"search":{"mode":"match"}}`,
    );
    for (const rev of revinclude) {
      if (page.length === 0) continue;
      const inc = await sql.query<{ resource_type: string; id: string; content: Uint8Array }>(
        `SELECT r.resource_type, r.id, r.content FROM bench_plain_token t
           JOIN bench_plain_resource r ON r.resource_type = t.resource_type AND r.id = t.id
          WHERE t.resource_type = $1 AND t.param = $2 AND t.value = ANY($3::text[])`,
        [rev.source, rev.param, page.map((r) => `${type}/${r.id}`)],
      );
      for (const r of inc.rows)
        entries.push(
          `{"fullUrl":"${base}/${r.resource_type}/${r.id}","resource":${Buffer.from(r.content).toString('utf8')},"search":{"mode":"include"}}`,
        );
    }
    const links = [`{"relation":"self","url":${JSON.stringify(`${base}/${type}?${echo.toString()}`)}}`];
    if (rows.length > count) {
      const next = new URLSearchParams(echo);
      next.set('_cursor', page[page.length - 1]!.id);
      links.push(`{"relation":"next","url":${JSON.stringify(`${base}/${type}?${next.toString()}`)}}`);
    }
    return reply
      .header('content-type', 'application/fhir+json')
      .send(
        `{"resourceType":"Bundle","type":"searchset",${totalSql !== undefined ? `"total":${totalSql},` : ''}"link":[${links.join(',')}],"entry":[${entries.join(',')}]}`,
      );
  });
}

/** A SELECT of the ids of `type` resources matching one parameter (comma values OR-ed). */
function condition(
  type: string,
  code: string,
  modifier: string | undefined,
  raw: string,
  p: (v: unknown) => string,
  typeRef: string,
): string {
  const def = indexedParams(type).get(code);
  if (!def) throw new Error(`baseline: unknown parameter ${type}.${code}`);
  const values = raw.split(',');
  const tok = (cond: string) =>
    `SELECT id FROM bench_plain_token WHERE resource_type = ${typeRef} AND param = ${p(code)} AND (${cond})`;
  const kind: string = def.type; // a plain string: the gateway's set of indexed types grows
  switch (kind) {
    case 'token':
    case 'reference':
    case 'uri':
      return tok(`value = ANY(${p(values)}::text[])`);
    case 'string':
      return tok(
        values
          .map((v) => {
            const norm = normalizeSearchString(v);
            return modifier === 'exact'
              ? `value = ${p(norm)}`
              : `(value >= ${p(norm)} AND value < ${p(`${norm}\u{10FFFF}`)})`;
          })
          .join(' OR '),
      );
    case 'date': {
      const ors = values.map((v) => {
        const prefix = /^(eq|ne|gt|lt|ge|le|sa|eb)/.exec(v)?.[1] ?? 'eq';
        const r = parseDateRange(prefix === 'eq' && !v.startsWith('eq') ? v : v.slice(2), code);
        const vs = p(r.start);
        const ve = p(r.end);
        // Same prefix semantics as the gateway (R4 search.html#prefix), on non-empty ranges [lo, hi); the
        // leading "hi > vs" is implied and lets the (…, hi) index bound the scan.
        const eq = `(lo >= ${vs} AND hi <= ${ve})`;
        switch (prefix) {
          case 'gt':
            return `hi > ${ve}`;
          case 'ge':
            return `(hi > ${vs} AND (hi > ${ve} OR ${eq}))`;
          case 'lt':
            return `lo < ${vs}`;
          case 'le':
            return `(lo < ${vs} OR ${eq})`;
          case 'eq':
            return `(hi > ${vs} AND ${eq})`;
          default:
            throw new Error(`baseline: prefix ${prefix} not handled`);
        }
      });
      return `SELECT id FROM bench_plain_date WHERE resource_type = ${typeRef} AND param = ${p(code)} AND (${ors.join(' OR ')})`;
    }
    default:
      throw new Error(`baseline: ${kind} parameters not handled`);
  }
}
