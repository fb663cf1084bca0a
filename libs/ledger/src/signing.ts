import { sign, type KeyObject } from 'node:crypto';
import { canonicalJson } from './canonical-json.js';
import { treeHeadSigningPayload } from './contracts/anchor.contract.js';
import type { GrantInput, TreeHeadInput } from './contracts/schemas.js';

/**
 * Client-side signing of what the contracts verify: a patient's (or delegate's) consent change,
 * and a gateway's signed tree head. Ed25519 or ECDSA P-256/SHA-256 over canonical JSON.
 */
export function signCanonical(privateKey: KeyObject, payload: unknown): string {
  const alg = privateKey.asymmetricKeyType === 'ed25519' ? null : 'sha256';
  return sign(alg, Buffer.from(canonicalJson(payload), 'utf8'), privateKey).toString('base64');
}

export const grantPayload = (grant: GrantInput): unknown => ({ op: 'grant', grant });

export const revokePayload = (grantId: string, patientId: string, version: number): unknown => ({
  op: 'revoke',
  grantId,
  patientId,
  version,
});

export const delegatePayload = (
  patientId: string,
  delegateId: string,
  allow: boolean,
  seq: number,
): unknown => ({
  op: allow ? 'delegate' : 'undelegate',
  patientId,
  delegateId,
  seq,
});

export function signTreeHead(privateKey: KeyObject, head: Omit<TreeHeadInput, 'signature'>): TreeHeadInput {
  return { ...head, signature: signCanonical(privateKey, treeHeadSigningPayload(head)) };
}
