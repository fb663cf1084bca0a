import { dataKeyContext, type KeyProvider } from '#crypto';
import type { Database } from '../database/database.js';

/**
 * Rewraps every data key not yet under the current KEK, one transaction per key so a crash halfway leaves
 * each key either old-wrapped or new-wrapped, both readable. The data itself is never re-encrypted.
 */
export async function rewrapDataKeys(db: Database, provider: KeyProvider): Promise<number> {
  const current = provider.currentKekId();
  const { rows } = await db.query<{ id: string; scope: string; kek_id: string; wrapped: Uint8Array }>(
    'SELECT id, scope, kek_id, wrapped FROM data_key WHERE kek_id <> $1',
    [current],
  );
  for (const r of rows) {
    const context = dataKeyContext(r.id, r.scope);
    const key = await provider.unwrap({ kekId: r.kek_id, wrapped: Buffer.from(r.wrapped) }, context);
    const next = await provider.wrap(key, context);
    await db.query('UPDATE data_key SET kek_id = $1, wrapped = $2 WHERE id = $3 AND kek_id = $4', [
      next.kekId,
      next.wrapped,
      r.id,
      r.kek_id,
    ]);
  }
  return rows.length;
}
