import pg from 'pg';
import type { Database, QueryResult, Sql } from './database.js';

// Keep bigint columns (version ids, sequence numbers) as JS numbers: they stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

export class PostgresDatabase implements Database {
  readonly kind = 'postgres' as const;
  private readonly pool: pg.Pool;

  constructor(connectionString: string, max = 10) {
    // No JIT compilation: a search's estimated cost (long token lists, large id arrays) easily passes
    // jit_above_cost, and compiling then takes longer than the query itself (13 ms of 30 measured at 100k).
    // No parallel workers: the gateway runs many short queries side by side, and Postgres chose a parallel
    // append for the chunked token lists of a chain, whose worker start-up cost more than the scans saved
    // (10.3 to 12.4 ms per query against 7.4 to 7.9 ms without, at 100k resources).
    this.pool = new pg.Pool({
      connectionString,
      max,
      options: '-c jit=off -c max_parallel_workers_per_gather=0',
    });
  }

  async query<T>(text: string, params: readonly unknown[] = []): Promise<QueryResult<T>> {
    const r = await this.pool.query(text, params as unknown[]);
    return { rows: r.rows as T[], rowCount: r.rowCount ?? 0 };
  }

  async exec(script: string): Promise<void> {
    await this.pool.query(script);
  }

  async transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    const tx: Sql = {
      query: async <R>(text: string, params: readonly unknown[] = []) => {
        const r = await client.query(text, params as unknown[]);
        return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
      },
      exec: async (script: string) => {
        await client.query(script);
      },
    };
    try {
      await client.query('BEGIN');
      const result = await fn(tx);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    // pool.end() resolves once its clients are asked to end, not once they have disconnected; wait for
    // every one, so that dropping the database right after (the test suites do) kills no live session.
    let open = this.pool.totalCount;
    const disconnected = new Promise<void>((resolve) => {
      if (open === 0) resolve();
      this.pool.on('remove', () => {
        if (--open <= 0) resolve();
      });
    });
    await this.pool.end();
    await disconnected;
  }
}
