import { open, seal } from './aead.js';
import { CryptoError } from './crypto-error.js';
import type { KeyProvider, WrappedKey } from './key-provider.js';
import { wrapAad } from './local-keyring.provider.js';

/**
 * KEKs supplied by the environment (e.g. injected by a secrets manager), for production without a
 * keyring file. Format: "id1:base64key,id2:base64key"; the last entry is current, so rotation means
 * appending a version and keeping the old ones until every data key has been rewrapped.
 */
export class EnvKeyProvider implements KeyProvider {
  private readonly keys: Map<string, Buffer>;
  private readonly current: string;

  constructor(spec: string) {
    this.keys = new Map();
    for (const part of spec
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean)) {
      const sep = part.indexOf(':');
      const id = part.slice(0, sep);
      const key = Buffer.from(part.slice(sep + 1), 'base64');
      if (sep <= 0 || !/^[A-Za-z0-9._-]+$/.test(id) || key.length !== 32) {
        // Never echo the value: it is a secret.
        throw new CryptoError('KEY_MATERIAL_INVALID', 'each key must be "id:<32 bytes in base64>"');
      }
      this.keys.set(id, key);
    }
    const ids = [...this.keys.keys()];
    if (ids.length === 0) throw new CryptoError('KEY_MATERIAL_INVALID', 'no key-encryption key given');
    this.current = ids[ids.length - 1]!;
  }

  currentKekId(): string {
    return this.current;
  }

  async wrap(key: Buffer, context: string): Promise<WrappedKey> {
    return {
      kekId: this.current,
      wrapped: seal(this.kek(this.current), key, wrapAad(this.current, context)),
    };
  }

  async unwrap(wrapped: WrappedKey, context: string): Promise<Buffer> {
    return open(this.kek(wrapped.kekId), wrapped.wrapped, wrapAad(wrapped.kekId, context));
  }

  private kek(id: string): Buffer {
    const key = this.keys.get(id);
    if (!key) throw new CryptoError('KEY_NOT_FOUND', `key-encryption key ${id} is not configured`);
    return key;
  }
}
