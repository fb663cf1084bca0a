import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BlindIndexer, DataKeyService, EnvKeyProvider, MemoryDataKeyStore } from '#crypto';
import { ReferenceTokenMemo, SearchIndex } from './search-index.js';

function keys(): DataKeyService {
  return new DataKeyService(
    new EnvKeyProvider(`k1:${randomBytes(32).toString('base64')}`),
    new MemoryDataKeyStore(),
  );
}

describe('SearchIndex.hash', () => {
  afterEach(() => vi.restoreAllMocks());

  it('remembers reference tokens only, and a remembered token is the one computed afresh', async () => {
    const dks = keys();
    const index = new SearchIndex(dks);
    await index.ready();
    const hmac = vi.spyOn(BlindIndexer.prototype, 'token');

    const ref = index.hash('Observation', 'subject', 'r|Patient/p1');
    expect(index.hash('Observation', 'subject', 'r|Patient/p1')).toBe(ref);
    expect(hmac).toHaveBeenCalledTimes(1);
    // Another domain (parameter, type or patient key) is another token, not the remembered one.
    expect(index.hash('Observation', 'performer', 'r|Patient/p1')).not.toBe(ref);
    expect(index.hash('Observation', 'subject', 'r|Patient/p1', 'p9')).not.toBe(ref);
    expect(hmac).toHaveBeenCalledTimes(3);

    // Values that may be PHI are hashed every time, never kept.
    const name = index.hash('Patient', 'family', 's|smi');
    expect(index.hash('Patient', 'family', 's|smi')).toBe(name);
    expect(hmac).toHaveBeenCalledTimes(5);

    // A second index over the same root key computes the same token without a memo.
    const fresh = new SearchIndex(dks);
    await fresh.ready();
    expect(fresh.hash('Observation', 'subject', 'r|Patient/p1')).toBe(ref);
    expect(hmac).toHaveBeenCalledTimes(6);
  });
});

describe('ReferenceTokenMemo', () => {
  it('keeps domains apart, holds at most twice its size and keeps what was used lately', () => {
    const memo = new ReferenceTokenMemo(3);
    const d1 = memo.domain('Observation.subject');
    const d2 = memo.domain('Encounter.subject');
    d1.set('a', 'A1');
    d2.set('a', 'A2');
    expect([d1.get('a'), d2.get('a'), d1.get('b')]).toEqual(['A1', 'A2', undefined]);
    d1.set('b', 'B'); // recent: d1 a, d2 a, d1 b (full)
    d1.set('c', 'C'); // that generation becomes the older one; recent: d1 c
    expect(d2.get('a')).toBe('A2'); // used: copied back; recent: d1 c, d2 a
    d1.set('d', 'D'); // recent full: d1 c, d2 a, d1 d
    d1.set('e', 'E'); // older: d1 c, d2 a, d1 d; the first generation (d1 a, d1 b) is forgotten
    expect([d1.get('a'), d1.get('b')]).toEqual([undefined, undefined]);
    expect([d1.get('c'), d2.get('a'), d1.get('d'), d1.get('e')]).toEqual(['C', 'A2', 'D', 'E']);
  });
});
