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
        if (isUniqueViolation(err)) {
          throw new FhirError('conflict', 'a concurrent write to the same resource won; retry the request');
        }
        throw err;
      }
    }
  }
}

function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === '23505';
}
