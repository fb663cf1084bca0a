import type { Database } from '../database/database.js';
import type { PublicJwks } from './jwks.js';

export interface ClientRecord {
  id: string;
  name: string;
  jwks: PublicJwks;
  scopes: string;
  enabled: boolean;
  createdAt: Date;
}

interface ClientRow {
  id: string;
  name: string;
  jwks: PublicJwks | string;
  scopes: string;
  enabled: boolean;
  created_at: Date | string;
}

/** Registered SMART backend-services clients and the replay store of their assertion ids. */
export class ClientRepository {
  constructor(private readonly db: Database) {}

  async findById(id: string): Promise<ClientRecord | undefined> {
    const { rows } = await this.db.query<ClientRow>(
      'SELECT id, name, jwks, scopes, enabled, created_at FROM auth_client WHERE id = $1',
      [id],
    );
    return rows[0] && toRecord(rows[0]);
  }

  async list(): Promise<ClientRecord[]> {
    const { rows } = await this.db.query<ClientRow>(
      'SELECT id, name, jwks, scopes, enabled, created_at FROM auth_client ORDER BY id',
    );
    return rows.map(toRecord);
  }

  /** Returns false when a client with this id exists already. */
  async insert(c: { id: string; name: string; jwks: PublicJwks; scopes: string }): Promise<boolean> {
    const { rows } = await this.db.query(
      `INSERT INTO auth_client (id, name, jwks, scopes) VALUES ($1, $2, $3::jsonb, $4)
       ON CONFLICT (id) DO NOTHING RETURNING id`,
      [c.id, c.name, JSON.stringify(c.jwks), c.scopes],
    );
    return rows.length === 1;
  }

  /** Replaces name, keys and scopes of an existing client; its enabled flag stays as it is. */
  async update(c: { id: string; name: string; jwks: PublicJwks; scopes: string }): Promise<boolean> {
    const { rows } = await this.db.query(
      `UPDATE auth_client SET name = $2, jwks = $3::jsonb, scopes = $4, updated_at = now()
       WHERE id = $1 RETURNING id`,
      [c.id, c.name, JSON.stringify(c.jwks), c.scopes],
    );
    return rows.length === 1;
  }

  async setEnabled(id: string, enabled: boolean): Promise<boolean> {
    const { rows } = await this.db.query(
      'UPDATE auth_client SET enabled = $2, updated_at = now() WHERE id = $1 RETURNING id',
      [id, enabled],
    );
    return rows.length === 1;
  }

  /**
   * Records an assertion id; false when the client used it before (a replay). The primary key makes this
   * atomic across concurrent requests and gateway instances.
   */
  async recordJti(clientId: string, jti: string, expiresAt: Date): Promise<boolean> {
    const { rows } = await this.db.query(
      `INSERT INTO auth_assertion_jti (client_id, jti, expires_at) VALUES ($1, $2, $3)
       ON CONFLICT (client_id, jti) DO NOTHING RETURNING jti`,
      [clientId, jti, expiresAt.toISOString()],
    );
    return rows.length === 1;
  }

  /** Drops ids whose assertions have expired: those assertions fail the exp check anyway. */
  async purgeExpiredJtis(now: Date): Promise<number> {
    const { rowCount } = await this.db.query('DELETE FROM auth_assertion_jti WHERE expires_at < $1', [
      now.toISOString(),
    ]);
    return rowCount;
  }
}

function toRecord(r: ClientRow): ClientRecord {
  return {
    id: r.id,
    name: r.name,
    jwks: typeof r.jwks === 'string' ? (JSON.parse(r.jwks) as PublicJwks) : r.jwks,
    scopes: r.scopes,
    enabled: r.enabled,
    createdAt: new Date(r.created_at),
  };
}
