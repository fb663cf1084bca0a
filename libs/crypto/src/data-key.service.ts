import { randomBytes, randomUUID } from 'node:crypto';
import { open, seal } from './aead.js';
import { CryptoError } from './crypto-error.js';
import type { DataKeyRecord, DataKeyStore } from './data-key.store.js';
import type { KeyProvider } from './key-provider.js';

export interface DataKey {
  id: string;
  scope: string;
  key: Buffer;
}

/**
 * Envelope encryption (NIST SP 800-57 key hierarchy): each scope (a patient compartment, or "shared")
 * gets its own AES-256 data key, wrapped by the current KEK. Destroying a scope's data key makes all of
 * its versions unreadable (crypto-shredding) without rewriting history or the ledger.
 *
 * Unwrapped keys are cached (bounded LRU) so that the read hot path does not unwrap on every request.
 */
export class DataKeyService {
  private readonly cache = new Map<string, DataKey>();
  private readonly activeByScope = new Map<string, string>();

  constructor(
    private readonly provider: KeyProvider,
    private readonly store: DataKeyStore,
    private readonly cacheSize = 10_000,
  ) {}

  /**
   * The active key of a scope, created on first use. Pass `store` to read through another handle (e.g. a
   * database transaction) and `create: false` where a new key must not be written through that handle:
   * then a missing key throws DataKeyMissingError, and the caller creates it outside and retries.
   */
  async keyForScope(scope: string, opts: { store?: DataKeyStore; create?: boolean } = {}): Promise<DataKey> {
    const cachedId = this.activeByScope.get(scope);
    if (cachedId !== undefined) {
      const hit = this.cacheGet(cachedId);
      if (hit) return hit;
    }
    const store = opts.store ?? this.store;
    let record = await store.findActive(scope);
    if (!record) {
      if (opts.create === false) throw new DataKeyMissingError(scope);
      const id = randomUUID();
      const wrapped = await this.provider.wrap(randomBytes(32), dataKeyContext(id, scope));
      record = await this.store.insertActive({ id, scope, kekId: wrapped.kekId, wrapped: wrapped.wrapped });
    }
    const key = await this.unwrap(record);
    this.activeByScope.set(scope, key.id);
    return key;
  }

  async keyById(id: string, store: DataKeyStore = this.store): Promise<DataKey> {
    const hit = this.cacheGet(id);
    if (hit) return hit;
    const record = await store.findById(id);
    if (!record) throw new CryptoError('KEY_NOT_FOUND', `data key ${id} does not exist (destroyed?)`);
    return this.unwrap(record);
  }

  private async unwrap(record: DataKeyRecord): Promise<DataKey> {
    const key = await this.provider.unwrap(
      { kekId: record.kekId, wrapped: record.wrapped },
      dataKeyContext(record.id, record.scope),
    );
    const dk: DataKey = { id: record.id, scope: record.scope, key };
    this.cacheSet(dk);
    return dk;
  }

  private cacheGet(id: string): DataKey | undefined {
    const hit = this.cache.get(id);
    if (hit) {
      // Refresh recency: Map iteration order is insertion order.
      this.cache.delete(id);
      this.cache.set(id, hit);
    }
    return hit;
  }

  private cacheSet(dk: DataKey): void {
    this.cache.set(dk.id, dk);
    if (this.cache.size > this.cacheSize) {
      const oldest = this.cache.keys().next().value as string;
      this.cache.delete(oldest);
    }
  }

  /** Drops cached key material for a scope, e.g. after its keys were destroyed. */
  evictScope(scope: string): void {
    for (const [id, dk] of this.cache) if (dk.scope === scope) this.cache.delete(id);
    this.activeByScope.delete(scope);
  }
}

/** A scope has no data key yet and the caller asked not to create one through its handle. */
export class DataKeyMissingError extends Error {
  constructor(readonly scope: string) {
    super('data key not yet created for scope');
    this.name = 'DataKeyMissingError';
  }
}

/** The AAD that binds a wrapped data key to its id and scope. */
export function dataKeyContext(id: string, scope: string): string {
  return `dek:${id}|scope:${scope}`;
}

/**
 * Encrypts one record under a data key. aad names what the bytes are (e.g. "Patient/123/_history/2");
 * the key id is appended so a row re-pointed at another key fails too.
 */
export function encryptRecord(dk: DataKey, plaintext: Buffer, aad: string): Buffer {
  return seal(dk.key, plaintext, recordAad(aad, dk.id));
}

export function decryptRecord(dk: DataKey, sealed: Buffer, aad: string): Buffer {
  return open(dk.key, sealed, recordAad(aad, dk.id));
}

function recordAad(aad: string, keyId: string): Buffer {
  return Buffer.from(`${aad}|dek:${keyId}`, 'utf8');
}
