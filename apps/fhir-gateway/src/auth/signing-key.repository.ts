import type { Database } from '../database/database.js';
import type { PublicJwk } from './jwks.js';

export interface SigningKeyRecord {
  kid: string;
  alg: string;
  publicJwk: PublicJwk;
  kekId: string;
  wrappedPrivate: Buffer;
  createdAt: Date;
}

interface SigningKeyRow {
  kid: string;
  alg: string;
  public_jwk: PublicJwk | string;
  kek_id: string;
  wrapped_private: Buffer | Uint8Array;
  created_at: Date | string;
}

/** The server's own token signing keys; the private half is stored only wrapped by a KEK. */
export class SigningKeyRepository {
  constructor(private readonly db: Database) {}

  /** Active keys, newest first: the first one signs, all of them verify and are published. */
  async listActive(): Promise<SigningKeyRecord[]> {
    const { rows } = await this.db.query<SigningKeyRow>(
      `SELECT kid, alg, public_jwk, kek_id, wrapped_private, created_at FROM auth_signing_key
       WHERE retired_at IS NULL ORDER BY created_at DESC, kid`,
    );
    return rows.map(toRecord);
  }

  /**
   * Inserts a key. With `onlyIfNone`, inserts only when no active key exists, under a table lock so that
   * gateway instances starting together on one Postgres create a single first key.
   */
  async insert(
    k: Omit<SigningKeyRecord, 'createdAt'>,
    opts: { onlyIfNone?: boolean } = {},
  ): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      if (opts.onlyIfNone) {
        await tx.query('LOCK TABLE auth_signing_key IN EXCLUSIVE MODE');
        const { rows } = await tx.query('SELECT 1 FROM auth_signing_key WHERE retired_at IS NULL LIMIT 1');
        if (rows.length > 0) return false;
      }
      await tx.query(
        `INSERT INTO auth_signing_key (kid, alg, public_jwk, kek_id, wrapped_private)
         VALUES ($1, $2, $3::jsonb, $4, $5)`,
        [k.kid, k.alg, JSON.stringify(k.publicJwk), k.kekId, k.wrappedPrivate],
      );
      return true;
    });
  }

  async retire(kid: string): Promise<boolean> {
    const { rows } = await this.db.query(
      'UPDATE auth_signing_key SET retired_at = now() WHERE kid = $1 AND retired_at IS NULL RETURNING kid',
      [kid],
    );
    return rows.length === 1;
  }
}

function toRecord(r: SigningKeyRow): SigningKeyRecord {
  return {
    kid: r.kid,
    alg: r.alg,
    publicJwk: typeof r.public_jwk === 'string' ? (JSON.parse(r.public_jwk) as PublicJwk) : r.public_jwk,
    kekId: r.kek_id,
    wrappedPrivate: Buffer.from(r.wrapped_private),
    createdAt: new Date(r.created_at),
  };
}
