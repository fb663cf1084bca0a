import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareKeys, MemoryState, OverlayState } from './world-state.js';

const ts = { seconds: 1, nanos: 0 };
const bytes = (s: string): Uint8Array => Buffer.from(s);

describe('compareKeys', () => {
  it('orders like UTF-8 bytes (Fabric state database order)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (a, b) => {
        expect(Math.sign(compareKeys(a, b))).toBe(Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b))));
      }),
    );
  });
});

describe('MemoryState and OverlayState', () => {
  it('range-queries in key order, deletes, and layers uncommitted writes without leaking them', () => {
    const s = new MemoryState();
    for (const k of ['b', 'a', 'd', 'c']) s.apply(k, bytes(k), 'tx1', ts);
    s.apply('c', null, 'tx2', ts);
    expect(s.range('a', 'z').map((e) => e.key)).toEqual(['a', 'b', 'd']);
    const o = new OverlayState(s);
    o.stage('bb', bytes('bb'), 'tx3', ts);
    o.stage('a', null, 'tx3', ts);
    expect(o.range('a', 'z').map((e) => e.key)).toEqual(['b', 'bb', 'd']);
    expect(s.range('a', 'z').map((e) => e.key)).toEqual(['a', 'b', 'd']);
    expect(s.history('c').map((h) => h.isDelete)).toEqual([false, true]);
  });
});
