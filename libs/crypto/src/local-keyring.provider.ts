import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, renameSync, statSync, chmodSync } from 'node:fs';
import { dirname } from 'node:path';
import { open, seal } from './aead.js';
import { CryptoError } from './crypto-error.js';
import type { KeyProvider, WrappedKey } from './key-provider.js';

interface KeyringFile {
  format: 'fhir-gateway-keyring/1';
  current: string;
  keys: { id: string; createdAt: string; key: string }[];
}

/**
 * KEKs kept in a local JSON file, created on first start with mode 0600. Each rotation appends a new
 * version and makes it current; old versions stay so that existing data keys can still be unwrapped.
 */
export class LocalKeyringProvider implements KeyProvider {
  private constructor(
    private readonly path: string,
    private file: KeyringFile,
  ) {}

  static openOrCreate(path: string): LocalKeyringProvider {
    let file: KeyringFile;
    try {
      file = parseKeyring(readFileSync(path, 'utf8'), path);
      if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      file = { format: 'fhir-gateway-keyring/1', current: 'local-1', keys: [newKey('local-1')] };
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      // 'wx' fails if another process created the file meanwhile, rather than overwriting its keys.
      writeFileSync(path, JSON.stringify(file, null, 2), { mode: 0o600, flag: 'wx' });
    }
    return new LocalKeyringProvider(path, file);
  }

  currentKekId(): string {
    return this.file.current;
  }

  /** Adds a new KEK version and makes it current. Returns its id. */
  rotate(): string {
    const id = `local-${this.file.keys.length + 1}`;
    const next: KeyringFile = { ...this.file, current: id, keys: [...this.file.keys, newKey(id)] };
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, JSON.stringify(next, null, 2), { mode: 0o600 });
    renameSync(tmp, this.path);
    this.file = next;
    return id;
  }

  async wrap(key: Buffer, context: string): Promise<WrappedKey> {
    const kekId = this.file.current;
    return { kekId, wrapped: seal(this.kek(kekId), key, wrapAad(kekId, context)) };
  }

  async unwrap(wrapped: WrappedKey, context: string): Promise<Buffer> {
    return open(this.kek(wrapped.kekId), wrapped.wrapped, wrapAad(wrapped.kekId, context));
  }

  private kek(id: string): Buffer {
    const entry = this.file.keys.find((k) => k.id === id);
    if (!entry) throw new CryptoError('KEY_NOT_FOUND', `key-encryption key ${id} is not in the keyring`);
    return Buffer.from(entry.key, 'base64');
  }
}

export function wrapAad(kekId: string, context: string): Buffer {
  return Buffer.from(`kek:${kekId}|${context}`, 'utf8');
}

function newKey(id: string): KeyringFile['keys'][number] {
  return { id, createdAt: new Date().toISOString(), key: randomBytes(32).toString('base64') };
}

function parseKeyring(text: string, path: string): KeyringFile {
  const file = JSON.parse(text) as Partial<KeyringFile>;
  const valid =
    file.format === 'fhir-gateway-keyring/1' &&
    Array.isArray(file.keys) &&
    file.keys.every((k) => typeof k.id === 'string' && Buffer.from(k.key, 'base64').length === 32) &&
    file.keys.some((k) => k.id === file.current);
  if (!valid) throw new CryptoError('KEYRING_INVALID', `keyring file ${path} is malformed`);
  return file as KeyringFile;
}
