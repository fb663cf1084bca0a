import type { DataKeyRecord, DataKeyStore } from '#crypto';
import type { Sql } from '../database/database.js';

interface Row {
  id: string;
  scope: string;
  kek_id: string;
  wrapped: Uint8Array;
}

const toRecord = (r: Row): DataKeyRecord => ({
  id: r.id,
  scope: r.scope,
  kekId: r.kek_id,
  wrapped: Buffer.from(r.wrapped),
});

/** Wrapped data keys in Postgres. Only wrapped key bytes are stored; KEKs never reach the database. */
export class DataKeyRepository implements DataKeyStore {
  constructor(private readonly sql: Sql) {}

  async findActive(scope: string): Promise<DataKeyRecord | undefined> {
    const { rows } = await this.sql.query<Row>(
      'SELECT id, scope, kek_id, wrapped FROM data_key WHERE scope = $1 AND retired_at IS NULL',
      [scope],
    );
    return rows[0] && toRecord(rows[0]);
  }

  async findById(id: string): Promise<DataKeyRecord | undefined> {
    const { rows } = await this.sql.query<Row>(
      'SELECT id, scope, kek_id, wrapped FROM data_key WHERE id = $1',
      [id],
    );
    return rows[0] && toRecord(rows[0]);
  }

  async insertActive(record: DataKeyRecord): Promise<DataKeyRecord> {
    // Runs outside any request transaction (the caller uses the pool), so a key created for a write
    // that later rolls back is merely unused, and concurrent writers converge on one key per scope.
    const { rows } = await this.sql.query<Row>(
      `INSERT INTO data_key (id, scope, kek_id, wrapped) VALUES ($1, $2, $3, $4)
       ON CONFLICT (scope) WHERE retired_at IS NULL DO NOTHING
       RETURNING id, scope, kek_id, wrapped`,
      [record.id, record.scope, record.kekId, record.wrapped],
    );
    if (rows[0]) return toRecord(rows[0]);
    const active = await this.findActive(record.scope);
    if (!active) throw new Error('data key vanished after insert');
    return active;
  }
}
