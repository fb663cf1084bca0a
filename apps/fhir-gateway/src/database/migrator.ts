import { createHash } from 'node:crypto';
import type { Database } from './database.js';

export interface Migration {
  id: string;
  sql: string;
}

/**
 * Applies pending migrations in order, each in its own transaction, and refuses to start when a migration
 * that was already applied has since been edited (its checksum differs). Never `synchronize`.
 */
export async function migrate(db: Database, migrations: readonly Migration[]): Promise<string[]> {
  await db.exec(`CREATE TABLE IF NOT EXISTS schema_migration (
    id text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
  // Serialise concurrent starters on a real server; PGlite has one connection anyway.
  return db.transaction(async (tx) => {
    await tx.query('LOCK TABLE schema_migration IN EXCLUSIVE MODE');
    const { rows } = await tx.query<{ id: string; checksum: string }>(
      'SELECT id, checksum FROM schema_migration',
    );
    const applied = new Map(rows.map((r) => [r.id, r.checksum]));
    const ran: string[] = [];
    for (const m of migrations) {
      const sum = createHash('sha256').update(m.sql).digest('hex');
      const seen = applied.get(m.id);
      if (seen !== undefined) {
        if (seen !== sum) throw new Error(`migration ${m.id} was changed after it was applied`);
        continue;
      }
      await tx.exec(m.sql);
      await tx.query('INSERT INTO schema_migration (id, checksum) VALUES ($1, $2)', [m.id, sum]);
      ran.push(m.id);
    }
    return ran;
  });
}
