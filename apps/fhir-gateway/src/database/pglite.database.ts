import { PGlite, types } from '@electric-sql/pglite';
import type { Database, QueryResult, Sql } from './database.js';

/**
 * Embedded Postgres (WASM). One connection, so transactions are serialised by PGlite itself; queries
 * issued outside a transaction wait for it to finish.
 */
export class PgliteDatabase implements Database {
  readonly kind = 'pglite' as const;

  private constructor(private readonly db: PGlite) {}

  /** dataDir undefined means in-memory (tests). */
  static async open(dataDir?: string): Promise<PgliteDatabase> {
    const db = await PGlite.create(dataDir ?? 'memory://', {
      parsers: { [types.INT8]: (v: string) => Number(v) },
    });
    return new PgliteDatabase(db);
  }

  async query<T>(text: string, params: readonly unknown[] = []): Promise<QueryResult<T>> {
    const r = await this.db.query<T>(text, params as unknown[]);
    return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
  }

  async exec(script: string): Promise<void> {
    await this.db.exec(script);
  }

  async transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
    return this.db.transaction(async (t) => {
      const tx: Sql = {
        query: async <R>(text: string, params: readonly unknown[] = []) => {
          const r = await t.query<R>(text, params as unknown[]);
          return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
        },
        exec: async (script: string) => {
          await t.exec(script);
        },
      };
      return fn(tx);
    });
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
