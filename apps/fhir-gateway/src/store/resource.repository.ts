import { CryptoError, decryptRecord, encryptRecord, type DataKeyService } from '#crypto';
import { FhirError } from '../fhir/outcomes.js';
import { DataKeyRepository } from './data-key.repository.js';
import type { Sql } from '../database/database.js';
import { bandStart, idBand, ID_BANDS } from '../search/id-bands.js';

export interface StoredVersion {
  resourceType: string;
  id: string;
  versionId: number;
  lastUpdated: string;
  deleted: boolean;
  /** The exact JSON bytes that were stored (meta included); absent for a deletion. */
  json?: Buffer;
}

/** A version to write: what is stored, plus what the write derives from it for keys and indexes. */
export interface NewVersion extends StoredVersion {
  /** Key scope: "patient:<id>" when the resource is in exactly one Patient compartment, else "shared". */
  keyScope: string;
  references: readonly { type: string; id: string }[];
  compartments: readonly string[];
  /** Blind-index tokens (hex) per search parameter. */
  searchTokens: readonly { param: string; token: string }[];
}

export interface HistoryQuery {
  resourceType?: string;
  id?: string;
  /** ISO instant: only versions updated at or after it. */
  since?: string;
  /** [start, end) instants: versions current at some point within it (R4 history `_at`). */
  at?: { start: string; end: string };
  /** Only versions with seq below this cursor (newest first paging). */
  beforeSeq?: number;
  limit: number;
}

interface VersionRow {
  resource_type: string;
  id: string;
  version_id: number;
  last_updated: Date | string;
  deleted: boolean;
  dek_id: string | null;
  content: Uint8Array | null;
  seq?: number;
}

/** Conditions with more tokens than this are resolved through the GIN index before ordering (see below). */
const FENCE_TOKENS = 64;
/** Token lists longer than this are read in chunks of this many (candidateWhere). */
const CHUNK_TOKENS = 1000;

/** A search candidate: a current, not deleted resource of the searched type, decrypted. */
export interface Candidate {
  id: string;
  /** The exact JSON bytes that were stored. */
  json: Buffer;
}

/** A blind-index search over one type; tokens are hex HMACs (see search/search-index.ts). */
export interface CandidateQuery {
  resourceType: string;
  conditions: readonly { terms: readonly { param: string; tokens: readonly string[] }[]; negate?: boolean }[];
  ids?: readonly string[];
  /**
   * Link conditions, ANDed: the resource has a local reference (resource_reference, written from
   * collectReferences) to one of each list's targets. From any element of the resource, so a superset of
   * what a reference parameter holds: the caller re-checks the parameter itself on the decrypted resource.
   */
  links?: readonly (readonly { type: string; id: string }[])[];
  /** Only members of this Patient's compartment (resource_compartment). */
  patientCompartment?: string;
  lastUpdated: readonly { op: '>=' | '<' | 'not-in'; start: string; end?: string }[];
  /**
   * A positive condition that is also indexed per id band (search/id-bands.ts): `tokens(band)` are its
   * tokens in one band. A page in id order then reads the bands it reaches instead of every match.
   */
  banded?: { condition: number; tokens: (band: number) => readonly string[] };
  afterId?: string;
  beforeId?: string;
  descending?: boolean;
  limit: number;
}

/**
 * The only code that reads or writes resource rows. It encrypts on the way in and decrypts on the way out,
 * so nothing above it handles ciphertext and nothing below it sees plaintext.
 *
 * AAD binds each ciphertext to "<type>/<id>/_history/<version>" and the data key id: a ciphertext copied to
 * another row, or a row re-pointed at another key, fails authentication on read.
 */
export class ResourceRepository {
  private readonly keyStore: DataKeyRepository;

  /** inTransaction: sql is a transaction handle, so no data key may be created through it. */
  constructor(
    private readonly sql: Sql,
    private readonly keys: DataKeyService,
    private readonly inTransaction = false,
  ) {
    this.keyStore = new DataKeyRepository(sql);
  }

  /** The same repository bound to a transaction handle. */
  inTx(tx: Sql): ResourceRepository {
    return new ResourceRepository(tx, this.keys, true);
  }

  async readCurrent(resourceType: string, id: string): Promise<StoredVersion | undefined> {
    const { rows } = await this.sql.query<VersionRow>(
      `SELECT resource_type, id, version_id, last_updated, deleted, dek_id, content
         FROM resource WHERE resource_type = $1 AND id = $2`,
      [resourceType, id],
    );
    return rows[0] && this.decrypt(rows[0]);
  }

  /** Current, not deleted versions of many ids of one type (for _include). */
  async readCurrentMany(resourceType: string, ids: readonly string[]): Promise<StoredVersion[]> {
    if (ids.length === 0) return [];
    const { rows } = await this.sql.query<VersionRow>(
      `SELECT resource_type, id, version_id, last_updated, deleted, dek_id, content
         FROM resource WHERE resource_type = $1 AND id = ANY($2::text[]) AND NOT deleted`,
      [resourceType, [...ids]],
    );
    return Promise.all(rows.map((r) => this.decrypt(r)));
  }

  async readVersion(resourceType: string, id: string, versionId: number): Promise<StoredVersion | undefined> {
    const { rows } = await this.sql.query<VersionRow>(
      `SELECT resource_type, id, version_id, last_updated, deleted, dek_id, content
         FROM resource_history WHERE resource_type = $1 AND id = $2 AND version_id = $3`,
      [resourceType, id, versionId],
    );
    return rows[0] && this.decrypt(rows[0]);
  }

  /** Current version number and deleted flag, row-locked until the transaction ends (for writes). */
  async lockCurrent(
    resourceType: string,
    id: string,
  ): Promise<{ versionId: number; deleted: boolean } | undefined> {
    const { rows } = await this.sql.query<{ version_id: number; deleted: boolean }>(
      'SELECT version_id, deleted FROM resource WHERE resource_type = $1 AND id = $2 FOR UPDATE',
      [resourceType, id],
    );
    return rows[0] && { versionId: rows[0].version_id, deleted: rows[0].deleted };
  }

  async writeVersion(v: NewVersion): Promise<void> {
    let dekId: string | null = null;
    let content: Buffer | null = null;
    if (v.json) {
      // Inside a transaction a new key must not be created (a rollback would orphan the cached key and
      // PGlite's single connection would deadlock): the store creates it outside and retries.
      const dk = await this.keys.keyForScope(v.keyScope, {
        store: this.keyStore,
        create: !this.inTransaction,
      });
      dekId = dk.id;
      content = encryptRecord(dk, v.json, aadFor(v.resourceType, v.id, v.versionId));
    }
    // One statement (data-modifying CTEs) instead of six round trips. Sub-statements of one WITH share a
    // snapshot and cannot see each other's rows, so the DELETEs only remove links that the new version no
    // longer has, and the INSERTs skip links that already exist: the two sets never overlap.
    const refTypes = v.deleted ? [] : v.references.map((r) => r.type);
    const refIds = v.deleted ? [] : v.references.map((r) => r.id);
    const patients = v.deleted ? [] : [...v.compartments];
    // Tokens are domain-separated per (type, parameter) by their HMAC key, so one set per resource suffices.
    const tokens = v.deleted ? null : [...new Set(v.searchTokens.map((t) => tokenToInt64(t.token)))];
    await this.sql.query(
      `WITH history AS (
         INSERT INTO resource_history (resource_type, id, version_id, last_updated, deleted, dek_id, content)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
       ), current AS (
         INSERT INTO resource (resource_type, id, version_id, last_updated, deleted, dek_id, content, search_tokens)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $11::bigint[])
         ON CONFLICT (resource_type, id) DO UPDATE SET version_id = EXCLUDED.version_id,
           last_updated = EXCLUDED.last_updated, deleted = EXCLUDED.deleted, dek_id = EXCLUDED.dek_id,
           content = EXCLUDED.content, search_tokens = EXCLUDED.search_tokens
       ), refs AS (
         SELECT DISTINCT t.type, t.id FROM unnest($8::text[], $9::text[]) AS t(type, id)
       ), stale_refs AS (
         DELETE FROM resource_reference r WHERE $3 > 1 AND r.resource_type = $1 AND r.id = $2
           AND (r.target_type, r.target_id) NOT IN (SELECT type, id FROM refs)
       ), new_refs AS (
         INSERT INTO resource_reference (resource_type, id, target_type, target_id)
         SELECT $1, $2, type, id FROM refs ON CONFLICT DO NOTHING
       ), stale_compartments AS (
         DELETE FROM resource_compartment c WHERE $3 > 1 AND c.resource_type = $1 AND c.id = $2
           AND c.patient_id <> ALL ($10::text[])
       )
       INSERT INTO resource_compartment (resource_type, id, patient_id)
       SELECT DISTINCT $1, $2, p FROM unnest($10::text[]) AS p ON CONFLICT DO NOTHING`,
      [
        v.resourceType,
        v.id,
        v.versionId,
        v.lastUpdated,
        v.deleted,
        dekId,
        content,
        refTypes,
        refIds,
        patients,
        tokens,
      ],
    );
  }

  /**
   * Current, non-deleted resources that may match a search, in id order (descending when paging back),
   * narrowed by blind-index conditions whose tokens are hex HMACs. A superset: callers re-check each one.
   */
  async searchCandidates(q: CandidateQuery): Promise<Candidate[]> {
    if (q.banded && widestList(q) <= FENCE_TOKENS) return this.bandedCandidates(q, q.banded);
    return this.readCandidates(q);
  }

  /**
   * Candidates in id order through a banded condition: first the two bands nearest the cursor, read through
   * their band tokens (about an eighth of the matches of a uniformly spread type); only when those hold
   * fewer than the page, the rest of the id range through the condition's own tokens. Two reads whose id
   * ranges do not overlap, so their concatenation is in order. Measured at 100k resources on Postgres
   * (`Patient?family=smi`, 294 matches): 0.36 to 0.38 ms per query against 0.55 to 0.63 ms.
   */
  private async bandedCandidates(
    q: CandidateQuery,
    banded: NonNullable<CandidateQuery['banded']>,
  ): Promise<Candidate[]> {
    const cursor = q.descending ? q.beforeId : q.afterId;
    const first = cursor === undefined ? (q.descending ? ID_BANDS - 1 : 0) : idBand(cursor);
    const near = q.descending ? [first - 1, first] : [first, first + 1];
    const bands = near.filter((b) => b >= 0 && b < ID_BANDS);
    const conditions = q.conditions.map((c, i) =>
      i === banded.condition ? { terms: [{ param: '', tokens: bands.flatMap((b) => banded.tokens(b)) }] } : c,
    );
    const head = await this.readCandidates({ ...q, conditions }, { typeAsFilter: true });
    const rest = q.descending ? first - 1 : first + 2;
    if (head.length >= q.limit || rest <= 0 || rest >= ID_BANDS) return head;
    // The cursor lies in the near bands, so the bound of the rest replaces it.
    const { afterId: _after, beforeId: _before, ...base } = q;
    const tail = await this.readCandidates({
      ...base,
      limit: q.limit - head.length,
      ...(q.descending ? { beforeId: bandStart(rest) } : { fromId: bandStart(rest) }),
    });
    return [...head, ...tail];
  }

  private async readCandidates(
    q: CandidateQuery & { fromId?: string },
    opts: { typeAsFilter?: boolean } = {},
  ): Promise<Candidate[]> {
    if (q.links?.length === 1 && q.conditions.length === 0 && !q.ids && q.patientCompartment === undefined)
      if (q.lastUpdated.length === 0 && q.fromId === undefined) return this.linkedCandidates(q, q.links[0]!);
    // A long list's ids are collected unordered (below), where the type can only filter.
    const fenced = widestList(q) > FENCE_TOKENS;
    const { where, params, p } = candidateWhere(q, fenced ? { typeAsFilter: true } : opts);
    if (q.fromId !== undefined) where.push(`r.id >= ${p(q.fromId)}`);
    if (q.afterId !== undefined) where.push(`r.id > ${p(q.afterId)}`);
    if (q.beforeId !== undefined) where.push(`r.id < ${p(q.beforeId)}`);
    const order = `${q.descending ? 'DESC' : 'ASC'}`;
    // Only what decryption needs: the type is the query's and a candidate is never deleted.
    const columns = 'r.id, r.version_id, r.dek_id, r.content';
    // With a long token list (a chain's resolved references, a wide date cover) Postgres over-estimates how
    // many rows match, walks the primary key in id order and filters nearly every row (measured at 100k
    // resources: 60,000 rows read for 89 matches, 1.5 s). Such candidates are few in fact, so their ids are
    // collected through the GIN index first, sorted and limited, and only those rows are then read by
    // primary key. (Joining the collected ids back instead let the planner, still over-estimating them,
    // choose a merge join along the whole primary key: 15,000 rows read for a page of 21, 15 ms.)
    const limit = p(q.limit);
    const sql = fenced
      ? `WITH c AS MATERIALIZED (SELECT r.id FROM resource r WHERE ${where.join(' AND ')})
           SELECT ${columns} FROM resource r
            WHERE r.resource_type = $1 AND r.id = ANY(ARRAY(SELECT c.id FROM c ORDER BY c.id ${order} LIMIT ${limit}))
            ORDER BY r.id ${order} LIMIT ${limit}`
      : `SELECT ${columns} FROM resource r WHERE ${where.join(' AND ')}
            ORDER BY r.id ${order} LIMIT ${limit}`;
    const { rows } = await this.sql.query<Pick<VersionRow, 'id' | 'version_id' | 'dek_id' | 'content'>>(
      sql,
      params,
    );
    return this.openAll(q.resourceType, rows);
  }

  /**
   * Candidates whose only index condition is one link list (a chain that is the search's only condition):
   * the page's ids come from the link table alone, in order, and only those rows are read. Before, every
   * linking row of resource was visited to test `deleted` (1,805 rows for 294 target Patients at 100k
   * resources) and then sorted. Nothing is lost: resource_reference holds the links of current versions
   * only, since write() removes a resource's links in the statement that deletes it.
   *
   * Two ways to find the page's ids (measured at 100k resources, 82,614 Observation links):
   * - walk the link table's primary key in id order (byte order, migration 0008) and keep the links to a
   *   target, stopping after a page: 0.45 ms for 294 Patients whose Observations are 3% of all, where
   *   probing each target and sorting the 1,805 ids they link takes 2.1 ms;
   * - probe each target through (target_type, target_id) and sort: its cost follows the number of targets.
   * The walk's cost follows how far it must go: for targets that link few resources of the type it reads
   * the whole type (10.4 ms for 294 targets with no Observation, and ten times that at ten times the
   * data). So many targets walk at most WALK_LINKS_PER_ROW link rows per row of the page, and if that
   * does not fill the page the targets are probed; few targets are probed at once.
   */
  private async linkedCandidates(
    q: CandidateQuery,
    targets: readonly { type: string; id: string }[],
  ): Promise<Candidate[]> {
    const order = q.descending ? 'DESC' : 'ASC';
    type Row = Pick<VersionRow, 'id' | 'version_id' | 'dek_id' | 'content'>;
    const page = async (ids: (p: (v: unknown) => string) => string): Promise<Row[]> => {
      const params: unknown[] = [q.resourceType, q.limit];
      const p = (v: unknown) => `$${params.push(v)}`;
      const sql = `SELECT r.id, r.version_id, r.dek_id, r.content FROM resource r
        WHERE r.resource_type = $1 AND NOT r.deleted AND r.id = ANY(ARRAY(${ids(p)}))
        ORDER BY r.id ${order} LIMIT $2`;
      return (await this.sql.query<Row>(sql, params)).rows;
    };
    const cursor = (p: (v: unknown) => string, id: string) =>
      q.afterId !== undefined
        ? `AND ${id} > ${p(q.afterId)}`
        : q.beforeId !== undefined
          ? `AND ${id} < ${p(q.beforeId)}`
          : '';
    if (targets.length > WALK_MIN_TARGETS) {
      const walked = await page(
        (p) => `SELECT DISTINCT w.id FROM (
                  SELECT rr.id, rr.target_type, rr.target_id FROM resource_reference rr
                   WHERE rr.resource_type = $1 ${cursor(p, 'rr.id')}
                   ORDER BY rr.id ${order} LIMIT ${p(q.limit * WALK_LINKS_PER_ROW)}) w
                 WHERE ${linkedTo(targets, p, 'w')}
                 ORDER BY w.id ${order} LIMIT $2`,
      );
      if (walked.length === q.limit) return this.openAll(q.resourceType, walked);
    }
    // Probes: the id only as an expression, so that no plan walks the primary key in its order.
    const probed = await page(
      (p) => `SELECT DISTINCT (rr.id || '') AS id FROM resource_reference rr
               WHERE rr.resource_type = $1 AND ${linkedTo(targets, p, 'rr')} ${cursor(p, "(rr.id || '')")}
               ORDER BY 1 ${order} LIMIT $2`,
    );
    return this.openAll(q.resourceType, probed);
  }

  private openAll(
    type: string,
    rows: readonly Pick<VersionRow, 'id' | 'version_id' | 'dek_id' | 'content'>[],
  ): Promise<Candidate[]> {
    return Promise.all(
      rows.map(async (r) => ({
        id: r.id,
        json: await this.open(type, r.id, r.version_id, r.dek_id, r.content),
      })),
    );
  }

  /**
   * Ids of at most `limit` candidates of a blind-index search, in no particular order, read from the index
   * and the row headers: a superset of the matches (a chain's targets, re-checked later against the
   * decrypted resources they turn out to be). When there are at most `decryptUpTo` of them, they come
   * decrypted, so that a few candidates can be decided at once.
   *
   * Many candidates come as one row of space-separated ids (FHIR ids have no spaces, R4
   * datatypes.html#id): a chain's 294 target Patients are one field for the gateway to parse, not 294 rows.
   * The statement shape follows what the caller expects (measured with pgbench at 100k resources):
   * - `expectFew` (an identifier names one resource): the rows with their content, up to one more than may
   *   be decrypted, and the ids again only if there are more. One match: 0.18 ms.
   * - otherwise one statement answers both ways. 294 matches: 0.43 ms, against 0.24 + 0.32 ms in two
   *   statements and 0.62 ms for a row per id with a window count; one match: 0.29 ms.
   */
  async searchCandidateIds(
    q: Omit<CandidateQuery, 'afterId' | 'beforeId' | 'descending'>,
    decryptUpTo = 0,
    expectFew = false,
  ): Promise<{ id: string; json?: Buffer }[]> {
    const { where, params, p } = candidateWhere(q, { typeAsFilter: true });
    const from = `FROM resource r WHERE ${where.join(' AND ')}`;
    type Row = Pick<VersionRow, 'id' | 'version_id' | 'dek_id' | 'content'> & { ids?: string | null };
    let rows: Row[];
    if (expectFew && decryptUpTo > 0) {
      rows = (
        await this.sql.query<Row>(
          `SELECT r.id, r.version_id, r.dek_id, r.content ${from} LIMIT ${p(Math.min(decryptUpTo + 1, q.limit))}`,
          params,
        )
      ).rows;
      if (rows.length > decryptUpTo) {
        params.pop(); // the first statement's LIMIT, the last value it added
        rows = (
          await this.sql.query<Row>(
            `SELECT string_agg(c.id, ' ') AS ids FROM (SELECT r.id ${from} LIMIT ${p(q.limit)}) c`,
            params,
          )
        ).rows;
      }
    } else {
      const few = p(decryptUpTo);
      rows = (
        await this.sql.query<Row>(
          `WITH c AS MATERIALIZED (SELECT r.id ${from} LIMIT ${p(q.limit)})
           SELECT d.id, d.version_id, d.dek_id, d.content, NULL AS ids
             FROM c CROSS JOIN LATERAL (SELECT x.id, x.version_id, x.dek_id, x.content FROM resource x
                                         WHERE x.resource_type = $1 AND x.id = c.id) d
            WHERE (SELECT count(*) FROM c) <= ${few}
           UNION ALL
           SELECT NULL, NULL, NULL, NULL, string_agg(c.id, ' ') FROM c HAVING count(*) > ${few}`,
          params,
        )
      ).rows;
    }
    const ids = rows.length === 1 ? rows[0]!.ids : undefined;
    if (typeof ids === 'string') return ids.split(' ').map((id) => ({ id }));
    return this.openAll(q.resourceType, rows);
  }

  /** Versions newest first, each with its seq for cursor paging. */
  async history(q: HistoryQuery): Promise<(StoredVersion & { seq: number })[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (clause: (p: string) => string, value: unknown) => {
      params.push(value);
      where.push(clause(`$${params.length}`));
    };
    if (q.resourceType) add((p) => `h.resource_type = ${p}`, q.resourceType);
    if (q.id) add((p) => `h.id = ${p}`, q.id);
    if (q.since) add((p) => `h.last_updated >= ${p}`, q.since);
    if (q.beforeSeq !== undefined) add((p) => `h.seq < ${p}`, q.beforeSeq);
    if (q.at) {
      // A version is current from its own lastUpdated until the next version's lastUpdated.
      add((p) => `h.last_updated < ${p}`, q.at.end);
      add(
        (p) => `NOT EXISTS (SELECT 1 FROM resource_history n WHERE n.resource_type = h.resource_type
                 AND n.id = h.id AND n.version_id > h.version_id AND n.last_updated <= ${p})`,
        q.at.start,
      );
    }
    params.push(q.limit);
    const { rows } = await this.sql.query<VersionRow & { seq: number }>(
      `SELECT h.seq, h.resource_type, h.id, h.version_id, h.last_updated, h.deleted, h.dek_id, h.content
         FROM resource_history h ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY h.seq DESC LIMIT $${params.length}`,
      params,
    );
    return Promise.all(rows.map(async (r) => ({ ...(await this.decrypt(r)), seq: r.seq })));
  }

  async countHistory(q: Omit<HistoryQuery, 'limit' | 'beforeSeq'>): Promise<number> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (q.resourceType) where.push(`resource_type = $${params.push(q.resourceType)}`);
    if (q.id) where.push(`id = $${params.push(q.id)}`);
    if (q.since) where.push(`last_updated >= $${params.push(q.since)}`);
    const { rows } = await this.sql.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM resource_history ${where.length ? `WHERE ${where.join(' AND ')}` : ''}`,
      params,
    );
    return rows[0]?.n ?? 0;
  }

  private async decrypt(row: VersionRow): Promise<StoredVersion> {
    const base = {
      resourceType: row.resource_type,
      id: row.id,
      versionId: row.version_id,
      lastUpdated: new Date(row.last_updated).toISOString(),
      deleted: row.deleted,
    };
    if (!row.content || !row.dek_id) return base;
    return {
      ...base,
      json: await this.open(row.resource_type, row.id, row.version_id, row.dek_id, row.content),
    };
  }

  /** The plaintext of one stored version's ciphertext. */
  private async open(
    type: string,
    id: string,
    versionId: number,
    dekId: string | null,
    content: Uint8Array | null,
  ): Promise<Buffer> {
    if (!content || !dekId) throw new FhirError('internal', 'a current resource has no content');
    try {
      const dk = await this.keys.keyById(dekId, this.keyStore);
      const sealed = Buffer.isBuffer(content)
        ? content
        : Buffer.from(content.buffer, content.byteOffset, content.byteLength);
      return decryptRecord(dk, sealed, aadFor(type, id, versionId));
    } catch (err) {
      if (err instanceof CryptoError) {
        // Tampered, swapped or shredded: never serve it, and say so without detail.
        throw new FhirError('internal', 'a stored resource failed its integrity check');
      }
      throw err;
    }
  }

  /**
   * Serialises conditional interactions on the same criteria until the transaction ends, so two racing
   * conditional creates cannot both see no match and both create (R4 http.html#ccreate). Under READ
   * COMMITTED the search that follows the lock sees what the previous holder committed. The key is a keyed
   * digest of the criteria, never the criteria themselves (they may be PHI).
   */
  async lockConditional(key: string): Promise<void> {
    if (!this.inTransaction) throw new Error('lockConditional needs a transaction');
    await this.sql.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [key]);
  }

  /** Current, non-deleted resources after (type, id), in that order: for re-indexing every resource. */
  async listCurrent(
    after: { type: string; id: string } | undefined,
    limit: number,
  ): Promise<StoredVersion[]> {
    const { rows } = await this.sql.query<VersionRow>(
      `SELECT resource_type, id, version_id, last_updated, deleted, dek_id, content FROM resource
        WHERE NOT deleted AND ($1::text IS NULL OR (resource_type, id) > ($1, $2))
        ORDER BY resource_type, id LIMIT $3`,
      [after?.type ?? null, after?.id ?? null, limit],
    );
    return Promise.all(rows.map((r) => this.decrypt(r)));
  }

  /** Replaces the blind-index tokens of a current resource version (hex, as SearchIndex makes them). */
  async setSearchTokens(
    type: string,
    id: string,
    versionId: number,
    tokensHex: readonly string[],
  ): Promise<void> {
    await this.sql.query(
      `UPDATE resource SET search_tokens = $4::bigint[] WHERE resource_type = $1 AND id = $2 AND version_id = $3`,
      [type, id, versionId, [...new Set(tokensHex.map(tokenToInt64))]],
    );
  }

  async searchIndexVersion(): Promise<number> {
    const { rows } = await this.sql.query<{ version: number }>('SELECT version FROM search_index_state');
    return rows[0]?.version ?? 0;
  }

  async setSearchIndexVersion(version: number): Promise<void> {
    await this.sql.query('UPDATE search_index_state SET version = $1', [version]);
  }
}

/** More targets than this walk the link table before they are probed (linkedCandidates). */
const WALK_MIN_TARGETS = 32;
/** How many link rows a walk reads at most per row of the page before the targets are probed instead. */
const WALK_LINKS_PER_ROW = 100;

/**
 * Links of `<alias>` (rows of resource_reference) to one of these targets: one `target_id = ANY(...)` per
 * target type, which Postgres estimates from the column's statistics (an `IN (SELECT * FROM unnest(...))`
 * is always guessed at 200 rows).
 */
function linkedTo(
  targets: readonly { type: string; id: string }[],
  p: (v: unknown) => string,
  alias: string,
): string {
  const byType = new Map<string, string[]>();
  for (const t of targets) {
    const ids = byType.get(t.type);
    if (ids) ids.push(t.id);
    else byType.set(t.type, [t.id]);
  }
  const each = [...byType].map(
    ([type, ids]) => `(${alias}.target_type = ${p(type)} AND ${alias}.target_id = ANY(${p(ids)}::text[]))`,
  );
  return `(${each.join(' OR ')})`;
}

/** The longest list of a query: its longest positive token condition or link list (before de-duplication). */
function widestList(q: Pick<CandidateQuery, 'conditions' | 'links'>): number {
  let widest = 0;
  for (const c of q.conditions)
    if (!c.negate)
      widest = Math.max(
        widest,
        c.terms.reduce((n, t) => n + t.tokens.length, 0),
      );
  for (const l of q.links ?? []) widest = Math.max(widest, l.length);
  return widest;
}

/** The WHERE clauses of a candidate query (without its cursor), and the longest positive token list. */
function candidateWhere(
  q: Omit<CandidateQuery, 'limit' | 'afterId' | 'beforeId' | 'descending'>,
  opts: { typeAsFilter?: boolean } = {},
): {
  where: string[];
  params: unknown[];
  p: (v: unknown) => string;
} {
  const params: unknown[] = [q.resourceType];
  // Every token is bound to its type by its HMAC key, but the planner assumes the type and the tokens are
  // independent: for a token it expects in a few hundred rows it ANDs in a bitmap of every row of the type
  // from the primary key (10,005 Patients: 1.2 ms, against 0.05 ms for the token alone, at 100k
  // resources). Where no ordered walk of the primary key can help (an unordered read, or the few rows of
  // band tokens), the type is written so that it can only filter: the GIN index then reads alone.
  const typeFilter = opts.typeAsFilter === true && q.conditions.some((c) => !c.negate);
  const where = [typeFilter ? `(r.resource_type || '') = $1` : 'r.resource_type = $1', 'NOT r.deleted'];
  const p = (v: unknown) => `$${params.push(v)}`;
  if (q.ids) where.push(`r.id = ANY(${p([...q.ids])}::text[])`);
  if (q.patientCompartment !== undefined) {
    where.push(`r.id IN (SELECT c.id FROM resource_compartment c
      WHERE c.resource_type = $1 AND c.patient_id = ${p(q.patientCompartment)})`);
  }
  for (const c of q.lastUpdated) {
    if (c.op === 'not-in')
      where.push(`NOT (r.last_updated >= ${p(c.start)} AND r.last_updated < ${p(c.end)})`);
    else if (c.end !== undefined)
      where.push(`r.last_updated >= ${p(c.start)} AND r.last_updated < ${p(c.end)}`);
    else where.push(`r.last_updated ${c.op} ${p(c.start)}`);
  }
  // A link condition is a semi-join on resource_reference, read through its primary key (type, id, ...)
  // or, from the targets, through (target_type, target_id); a long list is fenced like a long token list.
  for (const targets of q.links ?? []) {
    where.push(`EXISTS (SELECT 1 FROM resource_reference rr WHERE rr.resource_type = $1 AND rr.id = r.id
      AND ${linkedTo(targets, p, 'rr')})`);
  }
  // Each condition is one array overlap on the GIN index of search_tokens: its terms' tokens are merged,
  // since every token is already bound to its (type, parameter) by the HMAC key.
  const short: string[] = [];
  const long: string[][] = [];
  for (const c of q.conditions) {
    const tokens = [...new Set(c.terms.flatMap((t) => t.tokens.map(tokenToInt64)))];
    if (c.negate) where.push(`NOT (coalesce(r.search_tokens, '{}') && ${p(tokens)}::bigint[])`);
    else if (tokens.length <= CHUNK_TOKENS) short.push(p(tokens));
    else long.push(tokens);
  }
  for (const param of short) where.push(`r.search_tokens && ${param}::bigint[]`);
  // A very long list (a chain over thousands of targets) is read in chunks through the GIN index, with the
  // short conditions beside each: as one overlap, Postgres could estimate it unselective and test it row
  // by row, and && compares every pair of elements (with status=final, 60,000 rows x 294 tokens took
  // 1.8 s under the default statistics target). Since migration 0006 the planner estimates a list of
  // hundreds of tokens close to its true size and reads it through the index together with the other
  // conditions, which is faster than chunks (at 100k resources, a chain's 294 tokens: 3.1 ms against
  // 4.1 ms with a date, 6.9 ms against 14.1 ms with status=final; 704 and 960 tokens took 30 and 15 ms
  // as one overlap, where the chunks had taken 54 and 40 ms on a first, colder run); so only lists beyond
  // CHUNK_TOKENS are chunked.
  const also = short.map((param) => ` AND t.search_tokens && ${param}::bigint[]`).join('');
  for (const tokens of long) {
    const chunks: string[] = [];
    for (let i = 0; i < tokens.length; i += CHUNK_TOKENS) {
      chunks.push(
        `SELECT t.id FROM resource t WHERE t.search_tokens && ${p(tokens.slice(i, i + CHUNK_TOKENS))}::bigint[]${also}`,
      );
    }
    where.push(`r.id = ANY(ARRAY(${chunks.join(' UNION ALL ')}))`);
  }
  return { where, params, p };
}

export function aadFor(resourceType: string, id: string, versionId: number): string {
  return `${resourceType}/${id}/_history/${versionId}`;
}

/** A 64-bit blind-index token in hex as the signed bigint Postgres stores (decimal text, exact). */
export function tokenToInt64(hex: string): string {
  if (!/^[0-9a-f]{16}$/.test(hex))
    throw new Error('blind-index tokens must be 8 bytes to be stored as bigint');
  return BigInt.asIntN(64, BigInt(`0x${hex}`)).toString();
}
