/**
 * Where wrapped data keys (DEKs) live. The gateway stores them in Postgres beside the data; this
 * in-memory version serves unit tests. A scope is a random patient id ("patient:<id>") or "shared", so
 * nothing here is PHI.
 */
export interface DataKeyRecord {
  id: string;
  scope: string;
  kekId: string;
  wrapped: Buffer;
}

export interface DataKeyStore {
  findActive(scope: string): Promise<DataKeyRecord | undefined>;
  findById(id: string): Promise<DataKeyRecord | undefined>;
  /** Inserts the key as the scope's active one unless another writer won the race; returns the winner. */
  insertActive(record: DataKeyRecord): Promise<DataKeyRecord>;
}

export class MemoryDataKeyStore implements DataKeyStore {
  private readonly byId = new Map<string, DataKeyRecord>();
  private readonly active = new Map<string, string>();

  findActive(scope: string): Promise<DataKeyRecord | undefined> {
    const id = this.active.get(scope);
    return Promise.resolve(id === undefined ? undefined : this.byId.get(id));
  }

  findById(id: string): Promise<DataKeyRecord | undefined> {
    return Promise.resolve(this.byId.get(id));
  }

  insertActive(record: DataKeyRecord): Promise<DataKeyRecord> {
    const existing = this.active.get(record.scope);
    if (existing !== undefined) return Promise.resolve(this.byId.get(existing)!);
    this.byId.set(record.id, record);
    this.active.set(record.scope, record.id);
    return Promise.resolve(record);
  }

  /** Test helper: forget a scope's keys, as crypto-shredding would. */
  destroyScope(scope: string): void {
    for (const [id, r] of this.byId) if (r.scope === scope) this.byId.delete(id);
    this.active.delete(scope);
  }
}
