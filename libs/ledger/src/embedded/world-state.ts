import type { HistoryRecord, WorldState } from './embedded-stub.js';

/** Orders keys as Fabric's state database does: by UTF-8 bytes (equal to code-point order). */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (0xD800-0xDFFF) encode code points above 0xFFFF: they sort after 0xE000-0xFFFF.
    const sx = x >= 0xd800 && x <= 0xdfff;
    const sy = y >= 0xd800 && y <= 0xdfff;
    if (sx !== sy) return sx ? (y >= 0xe000 ? 1 : x - y) : x >= 0xe000 ? -1 : x - y;
    return x - y;
  }
  return a.length - b.length;
}

function lowerBound(keys: string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(keys[mid] as string, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Committed world state with a sorted key index and per-key history. */
export class MemoryState implements WorldState {
  private readonly values = new Map<string, Uint8Array>();
  private readonly sorted: string[] = [];
  private readonly hist = new Map<string, HistoryRecord[]>();

  get(key: string): Uint8Array | undefined {
    return this.values.get(key);
  }

  range(start: string, end: string): { key: string; value: Uint8Array }[] {
    const out: { key: string; value: Uint8Array }[] = [];
    for (let i = lowerBound(this.sorted, start); i < this.sorted.length; i++) {
      const key = this.sorted[i] as string;
      if (compareKeys(key, end) >= 0) break;
      out.push({ key, value: this.values.get(key) as Uint8Array });
    }
    return out;
  }

  history(key: string): HistoryRecord[] {
    return this.hist.get(key) ?? [];
  }

  apply(
    key: string,
    value: Uint8Array | null,
    txId: string,
    timestamp: { seconds: number; nanos: number },
  ): void {
    const had = this.values.has(key);
    if (value === null) {
      if (had) {
        this.values.delete(key);
        this.sorted.splice(lowerBound(this.sorted, key), 1);
      }
    } else {
      this.values.set(key, value);
      if (!had) this.sorted.splice(lowerBound(this.sorted, key), 0, key);
    }
    const h = this.hist.get(key) ?? [];
    h.push({ txId, timestamp, isDelete: value === null, value: value ?? new Uint8Array(0) });
    this.hist.set(key, h);
  }
}

/**
 * The committed state plus the writes of earlier transactions in the block being built, so that
 * transactions batched into one block execute serially; the batch is merged only after the block
 * is durable, so readers never see uncommitted data.
 */
export class OverlayState implements WorldState {
  private readonly writes = new Map<string, { value: Uint8Array | null; rec: HistoryRecord }>();
  constructor(private readonly base: MemoryState) {}

  get(key: string): Uint8Array | undefined {
    const w = this.writes.get(key);
    if (w) return w.value ?? undefined;
    return this.base.get(key);
  }

  range(start: string, end: string): { key: string; value: Uint8Array }[] {
    const merged = new Map(this.base.range(start, end).map((e) => [e.key, e.value]));
    for (const [key, w] of this.writes) {
      if (compareKeys(key, start) < 0 || compareKeys(key, end) >= 0) continue;
      if (w.value === null) merged.delete(key);
      else merged.set(key, w.value);
    }
    return [...merged].map(([key, value]) => ({ key, value })).sort((a, b) => compareKeys(a.key, b.key));
  }

  history(key: string): HistoryRecord[] {
    const w = this.writes.get(key);
    return w ? [...this.base.history(key), w.rec] : this.base.history(key);
  }

  stage(
    key: string,
    value: Uint8Array | null,
    txId: string,
    timestamp: { seconds: number; nanos: number },
  ): void {
    this.writes.set(key, {
      value,
      rec: { txId, timestamp, isDelete: value === null, value: value ?? new Uint8Array(0) },
    });
  }
}
