import { createHmac, hkdfSync } from 'node:crypto';

/**
 * Keyed blind indexes for searching encrypted data (in the manner of CipherSweet blind indexes and AWS
 * Database Encryption SDK beacons): HMAC-SHA256 of a normalised value under a key derived per domain
 * (resource type + search parameter) with HKDF (RFC 5869), truncated to `widthBytes`.
 *
 * What it reveals: equal values in one domain give equal tokens, so a database reader learns equality and
 * frequency within a domain, never the value, and nothing across domains. Truncation trades false
 * positives (removed by re-checking decrypted candidates) against that leakage.
 */
export class BlindIndexer {
  private readonly keys = new Map<string, Buffer>();

  constructor(
    private readonly rootKey: Buffer,
    readonly widthBytes = 8,
  ) {
    if (rootKey.length < 32) throw new Error('blind index root key must be at least 256 bits');
    if (widthBytes < 2 || widthBytes > 32) throw new Error('blind index width must be 2..32 bytes');
  }

  token(domain: string, value: string): Buffer {
    return createHmac('sha256', this.keyFor(domain))
      .update(value, 'utf8')
      .digest()
      .subarray(0, this.widthBytes);
  }

  private keyFor(domain: string): Buffer {
    let key = this.keys.get(domain);
    if (!key) {
      key = Buffer.from(hkdfSync('sha256', this.rootKey, 'fhir-gateway/blind-index/v1', domain, 32));
      this.keys.set(domain, key);
    }
    return key;
  }
}

/**
 * Case- and accent-insensitive form for FHIR string search (R4 search.html#string): Unicode NFKD, combining
 * marks removed, lower case, whitespace collapsed.
 */
export function normalizeSearchString(value: string): string {
  return value
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase()
    .replace(/\s+/g, ' ')
    .trim();
}
