import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { canonicalJson } from '../canonical-json.js';

/**
 * Signature checks run inside the contract: verification is deterministic, so every endorser
 * agrees. Ed25519 (RFC 8032) or ECDSA P-256 with SHA-256 (DER signature), over canonical JSON.
 */
export function publicKeyFromPem(pem: string): KeyObject {
  return createPublicKey({ key: pem, format: 'pem' });
}

export function keyFingerprint(key: KeyObject): string {
  return createHash('sha256')
    .update(key.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

export function verifyCanonical(publicKeyPem: string, payload: unknown, signatureB64: string): boolean {
  try {
    const key = publicKeyFromPem(publicKeyPem);
    const alg = key.asymmetricKeyType === 'ed25519' ? null : 'sha256';
    return verify(alg, Buffer.from(canonicalJson(payload), 'utf8'), key, Buffer.from(signatureB64, 'base64'));
  } catch {
    return false;
  }
}
