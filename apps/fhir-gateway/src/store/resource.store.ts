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
    private readonly keys: DataKeyService,
  ) {
    this.repo = new ResourceRepository(db, keys);
  }

  async write<T>(fn: (repo: ResourceRepository) => Promise<T>): Promise<T> {
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
