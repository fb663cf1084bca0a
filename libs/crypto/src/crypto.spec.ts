import { mkdtempSync, rmSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CryptoError,
  DataKeyService,
  EnvKeyProvider,
  LocalKeyringProvider,
  MemoryDataKeyStore,
  decryptRecord,
  encryptRecord,
} from './index.js';

const tmpDirs: string[] = [];
const tmp = () => {
  const dir = mkdtempSync(join(tmpdir(), 'crypto-spec-'));
  tmpDirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of tmpDirs) rmSync(dir, { recursive: true, force: true });
});

describe('LocalKeyringProvider', () => {
  it('creates the keyring with 0600 permissions and reopens it', async () => {
    const path = join(tmp(), 'sub', 'keyring.json');
    const a = LocalKeyringProvider.openOrCreate(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const wrapped = await a.wrap(Buffer.alloc(32, 7), 'ctx');
    const b = LocalKeyringProvider.openOrCreate(path);
    expect(await b.unwrap(wrapped, 'ctx')).toEqual(Buffer.alloc(32, 7));
  });

  it('rotates: new keys use the new version, old wrapped keys still open', async () => {
    const path = join(tmp(), 'keyring.json');
    const p = LocalKeyringProvider.openOrCreate(path);
    const old = await p.wrap(Buffer.alloc(32, 1), 'ctx');
    expect(p.rotate()).toBe('local-2');
    const fresh = await p.wrap(Buffer.alloc(32, 2), 'ctx');
    expect(fresh.kekId).toBe('local-2');
    expect(await p.unwrap(old, 'ctx')).toEqual(Buffer.alloc(32, 1));
    expect(JSON.parse(readFileSync(path, 'utf8')).keys).toHaveLength(2);
  });

  it('refuses to unwrap under another context', async () => {
    const p = LocalKeyringProvider.openOrCreate(join(tmp(), 'k.json'));
    const w = await p.wrap(Buffer.alloc(32, 1), 'dek:a');
    await expect(p.unwrap(w, 'dek:b')).rejects.toMatchObject({ code: 'DECRYPT_FAILED' });
  });
});

describe('EnvKeyProvider', () => {
  it('uses the last key as current and never echoes key material on error', async () => {
    const k1 = Buffer.alloc(32, 1).toString('base64');
    const k2 = Buffer.alloc(32, 2).toString('base64');
    const p = new EnvKeyProvider(`v1:${k1},v2:${k2}`);
    expect(p.currentKekId()).toBe('v2');
    const w = await p.wrap(Buffer.alloc(32, 9), 'c');
    expect(await p.unwrap(w, 'c')).toEqual(Buffer.alloc(32, 9));
    const secret = 'not-a-valid-key-SECRET';
    try {
      new EnvKeyProvider(`v1:${secret}`);
      expect.fail('should throw');
    } catch (err) {
      expect(err).toBeInstanceOf(CryptoError);
      expect(String((err as Error).message)).not.toContain(secret);
    }
  });
});

describe('DataKeyService and record encryption', () => {
  const make = () => {
    const store = new MemoryDataKeyStore();
    const provider = LocalKeyringProvider.openOrCreate(join(tmp(), 'k.json'));
    return { store, svc: new DataKeyService(provider, store) };
  };

  it('gives one key per scope and different keys to different scopes', async () => {
    const { svc } = make();
    const a1 = await svc.keyForScope('patient:a');
    const a2 = await svc.keyForScope('patient:a');
    const b = await svc.keyForScope('patient:b');
    expect(a1.id).toBe(a2.id);
    expect(a1.key.equals(b.key)).toBe(false);
  });

  it('round-trips and detects tampering and swapped context', async () => {
    const { svc } = make();
    const dk = await svc.keyForScope('patient:a');
    const ct = encryptRecord(dk, Buffer.from('{"name":"Ada"}'), 'Patient/1/_history/1');
    expect(decryptRecord(dk, ct, 'Patient/1/_history/1').toString()).toBe('{"name":"Ada"}');
    const flipped = Buffer.from(ct);
    flipped[flipped.length - 1]! ^= 1;
    expect(() => decryptRecord(dk, flipped, 'Patient/1/_history/1')).toThrow(CryptoError);
    expect(() => decryptRecord(dk, ct, 'Patient/2/_history/1')).toThrow(/authentication/);
    const other = await svc.keyForScope('patient:b');
    expect(() => decryptRecord(other, ct, 'Patient/1/_history/1')).toThrow(CryptoError);
  });

  it('makes data unreadable once the scope key is destroyed (crypto-shredding)', async () => {
    const { svc, store } = make();
    const dk = await svc.keyForScope('patient:a');
    store.destroyScope('patient:a');
    svc.evictScope('patient:a');
    await expect(svc.keyById(dk.id)).rejects.toMatchObject({ code: 'KEY_NOT_FOUND' });
  });
});
