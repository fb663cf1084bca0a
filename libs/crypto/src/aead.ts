import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { CryptoError } from './crypto-error.js';

/**
 * AES-256-GCM with a random 96-bit nonce (NIST SP 800-38D, section 8.2.2).
 * Layout: 1 byte format version | 12 bytes nonce | 16 bytes tag | ciphertext.
 * Random nonces are safe for well under 2^32 messages per key; per-patient data keys keep each key's
 * message count far below that bound.
 */
const FORMAT_V1 = 0x01;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + NONCE_BYTES + TAG_BYTES;

export function seal(key: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(aad);
  const body = cipher.update(plaintext);
  const final = cipher.final();
  const out = Buffer.allocUnsafe(HEADER_BYTES + body.length + final.length);
  out[0] = FORMAT_V1;
  nonce.copy(out, 1);
  cipher.getAuthTag().copy(out, 1 + NONCE_BYTES);
  body.copy(out, HEADER_BYTES);
  final.copy(out, HEADER_BYTES + body.length);
  return out;
}

export function open(key: Buffer, sealed: Buffer, aad: Buffer): Buffer {
  if (sealed.length < HEADER_BYTES || sealed[0] !== FORMAT_V1) {
    throw new CryptoError('UNSUPPORTED_FORMAT', 'ciphertext has an unknown format');
  }
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(1, 1 + NONCE_BYTES));
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(1 + NONCE_BYTES, HEADER_BYTES));
  try {
    return Buffer.concat([decipher.update(sealed.subarray(HEADER_BYTES)), decipher.final()]);
  } catch {
    // GCM tag mismatch: the bytes, the key or the bound context (AAD) differ from what was sealed.
    throw new CryptoError('DECRYPT_FAILED', 'ciphertext failed authentication');
  }
}
