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
  it('holds at most twice its size and keeps what was used lately', () => {
    const memo = new ReferenceTokenMemo(3);
    for (const k of ['a', 'b', 'c']) memo.set(k, k.toUpperCase());
    memo.set('d', 'D'); // a, b, c become the older generation
    expect(memo.get('a')).toBe('A'); // used: back into the recent generation (d, a)
    memo.set('e', 'E'); // recent: d, a, e (full)
    memo.set('f', 'F'); // d, a, e become older; b and c are forgotten
    expect(memo.get('b')).toBeUndefined();
    expect(memo.get('c')).toBeUndefined();
    expect(['a', 'd', 'e', 'f'].map((k) => memo.get(k))).toEqual(['A', 'D', 'E', 'F']);
  });
});
