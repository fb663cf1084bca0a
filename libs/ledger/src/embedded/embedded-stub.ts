import type { StoredWrite } from './block-store.js';

/**
 * The slice of Fabric's ChaincodeStub and ClientIdentity that the contracts use, implemented
 * over the embedded world state with the same semantics: composite keys in fabric-shim's format,
 * range iteration in UTF-8 byte order, history newest first, one event per transaction, and
 * reads that see the transaction's own writes only after commit (as in Fabric, a transaction
 * does not read its own writes).
 */
const NS = '\x00';
const MAX_RUNE = '\u{10ffff}';

export interface HistoryRecord {
  txId: string;
  timestamp: { seconds: number; nanos: number };
  isDelete: boolean;
  value: Uint8Array;
}

export interface WorldState {
  get(key: string): Uint8Array | undefined;
  /** Keys in [start, end) in UTF-8 byte order. */
  range(start: string, end: string): { key: string; value: Uint8Array }[];
  history(key: string): HistoryRecord[];
}

class ListIterator<T> {
  private i = 0;
  constructor(private readonly items: T[]) {}
  next(): Promise<{ value: T; done: false } | { value: undefined; done: true }> {
    const v = this.items[this.i++];
    return Promise.resolve(v === undefined ? { value: undefined, done: true } : { value: v, done: false });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

export class EmbeddedStub {
  readonly writes = new Map<string, Uint8Array | null>();
  event: { name: string; payload: string } | undefined;

  constructor(
    private readonly state: WorldState,
    private readonly txId: string,
    private readonly timestamp: { seconds: number; nanos: number },
  ) {}

  getTxID(): string {
    return this.txId;
  }
  getTxTimestamp(): { seconds: number; nanos: number } {
    return { ...this.timestamp };
  }
  getState(key: string): Promise<Uint8Array> {
    return Promise.resolve(this.state.get(key) ?? new Uint8Array(0));
  }
  putState(key: string, value: Uint8Array): Promise<void> {
    if (key === '') return Promise.reject(new Error('key must not be empty'));
    this.writes.set(key, Uint8Array.from(value));
    return Promise.resolve();
  }
  deleteState(key: string): Promise<void> {
    this.writes.set(key, null);
    return Promise.resolve();
  }
  setEvent(name: string, payload: Uint8Array): void {
    this.event = { name, payload: Buffer.from(payload).toString('utf8') };
  }
  createCompositeKey(objectType: string, attributes: string[]): string {
    for (const a of [objectType, ...attributes]) {
      if (a.includes(NS) || a.includes(MAX_RUNE))
        throw new Error(`invalid composite key attribute ${JSON.stringify(a)}`);
    }
    return `${NS}${objectType}${NS}${attributes.map((a) => `${a}${NS}`).join('')}`;
  }
  splitCompositeKey(key: string): { objectType: string | null; attributes: string[] } {
    if (!key.startsWith(NS) || key.length < 2) return { objectType: null, attributes: [] };
    const parts = key.slice(1).split(NS);
    parts.pop();
    return { objectType: parts[0] ?? null, attributes: parts.slice(1) };
  }
  getStateByPartialCompositeKey(
    objectType: string,
    attributes: string[],
  ): Promise<ListIterator<{ key: string; value: Uint8Array }>> {
    const start = this.createCompositeKey(objectType, attributes);
    return Promise.resolve(new ListIterator(this.state.range(start, start + MAX_RUNE)));
  }
  getHistoryForKey(key: string): Promise<ListIterator<HistoryRecord>> {
    return Promise.resolve(new ListIterator([...this.state.history(key)].reverse()));
  }

  storedWrites(): StoredWrite[] {
    return [...this.writes].map(([key, v]) => ({
      key,
      value: v === null ? null : Buffer.from(v).toString('base64'),
    }));
  }
}

/** Fabric's ClientIdentity for an embedded caller. */
export class EmbeddedClientIdentity {
  constructor(
    private readonly mspId: string,
    private readonly id: string,
  ) {}
  getMSPID(): string {
    return this.mspId;
  }
  getID(): string {
    return this.id;
  }
}
