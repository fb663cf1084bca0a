import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite, types } from '@electric-sql/pglite';
import type { Database, QueryResult, Sql } from './database.js';

/**
 * Embedded Postgres (WASM). One connection, so transactions are serialised by PGlite itself; queries
 * issued outside a transaction wait for it to finish.
 */
export class PgliteDatabase implements Database {
  readonly kind = 'pglite' as const;

  private constructor(
    private readonly db: PGlite,
    private readonly lockPath?: string,
  ) {}

  /** dataDir undefined means in-memory (tests). */
  static async open(dataDir?: string): Promise<PgliteDatabase> {
    let lockPath: string | undefined;
    if (dataDir) {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      lockPath = acquireLock(join(dataDir, '.gateway.lock'));
    }
    try {
      const db = await PGlite.create(dataDir ?? 'memory://', {
        parsers: { [types.INT8]: (v: string) => Number(v) },
      });
      return new PgliteDatabase(db, lockPath);
    } catch (err) {
      if (lockPath) rmSync(lockPath, { force: true });
      throw err;
    }
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
    if (this.lockPath) rmSync(this.lockPath, { force: true });
  }
}

/**
 * PGlite is one process's database: a second process opening the same directory would corrupt it. A lock
 * file holding the owner's pid refuses a second opener while the owner lives, and is taken over if the
 * owner died without cleaning up.
 */
function acquireLock(path: string): string {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return path;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(path, 'utf8'));
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw new Error(
          `the embedded database in ${path.replace(/\/[^/]*$/, '')} is in use by process ${pid}; stop it first or set DATABASE_URL`,
          { cause: err },
        );
      }
      rmSync(path, { force: true });
    }
  }
  throw new Error(`could not lock the embedded database (${path})`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
