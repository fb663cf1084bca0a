import { DataKeyMissingError, type DataKeyService } from '#crypto';
import type { Database } from '../database/database.js';
import { FhirError } from '../fhir/outcomes.js';
import { ResourceRepository } from './resource.repository.js';

/**
 * Entry point to storage: reads go through the pool, writes through one database transaction each, so a
 * failed write leaves nothing behind.
 */
export class ResourceStore {
  readonly repo: ResourceRepository;

  constructor(
    private readonly db: Database,
    readonly keys: DataKeyService,
  ) {
    this.repo = new ResourceRepository(db, keys);
  }

  /**
   * keyScopes: the data-key scopes the write will encrypt under, when the caller knows them. Their keys are
   * created first, outside the transaction; a scope discovered only inside it (e.g. a PATCH that moves a
   * resource to another patient) is created on demand and the write is retried.
   */
  async write<T>(
    fn: (repo: ResourceRepository) => Promise<T>,
    keyScopes: readonly string[] = [],
  ): Promise<T> {
    for (const scope of new Set(keyScopes)) await this.keys.keyForScope(scope);
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.db.transaction((tx) => fn(this.repo.inTx(tx)));
      } catch (err) {
        if (err instanceof DataKeyMissingError && attempt < 8) {
          // Create the scope's data key outside the transaction, then run the whole write again.
          await this.keys.keyForScope(err.scope);
          continue;
        }
        if (isTransient(err) && attempt < TRANSIENT_RETRIES) {
          // Postgres aborted the transaction to break a deadlock (40P01) or a serialization conflict
          // (40001); nothing of it was kept, so the write runs again, after a short random pause that
          // keeps the two sides from colliding once more.
          await new Promise((r) => setTimeout(r, 5 + Math.random() * 20 * (attempt + 1)));
          continue;
        }
        if (isTransient(err)) {
          throw new FhirError('conflict', 'concurrent writes kept colliding; retry the request');
        }
        if (isUniqueViolation(err)) {
          throw new FhirError('conflict', 'a concurrent write to the same resource won; retry the request');
        }
        throw err;
      }
    }
  }
}

/** Times a write is run again after Postgres aborted it as a deadlock or serialization victim. */
const TRANSIENT_RETRIES = 4;

function isTransient(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === '40P01' || code === '40001';
}

function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === '23505';
}
