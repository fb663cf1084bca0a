import type { Context } from 'fabric-contract-api';
import { reject } from './contract-error.js';
import { loadIdentity, type IdentityRecord } from './identity.store.js';
import type { Evidence } from './schemas.js';
import { verifyCanonical } from './signature.js';
import { callerId } from './tx-context.js';

/**
 * Proves, from signed evidence only, that the patient (or an identity the patient authorised)
 * wants this change. Accepted evidence:
 *  1. a signature by the patient's (or delegate's) key registered in the identity contract over
 *     the canonical JSON of `payload`, verified here; a gateway that merely submits the
 *     transaction cannot forge it;
 *  2. otherwise the submitter's own certificate (ctx.clientIdentity) bound to the patient or a
 *     delegate through `fabricId` at registration.
 * Returns the basis, recorded with the change.
 */
export async function assertPatientAuthority(
  ctx: Context,
  patient: IdentityRecord,
  payload: unknown,
  evidence: Evidence,
  options: { allowDelegates: boolean } = { allowDelegates: true },
): Promise<string> {
  if (patient.kind !== 'patient') reject('NOT_FOUND', `patient ${patient.id} not found`);
  if (patient.status !== 'active') reject('REVOKED', `patient ${patient.id} is revoked`);
  const delegates = options.allowDelegates ? (patient.delegates ?? []) : [];

  if (evidence.signature !== undefined) {
    const signerId = evidence.signer ?? patient.id;
    if (signerId !== patient.id && !delegates.includes(signerId))
      reject('NOT_AUTHORIZED', `${signerId} may not act for patient ${patient.id}`);
    const signer = signerId === patient.id ? patient : await loadIdentity(ctx, signerId);
    if (!signer || signer.status !== 'active')
      return reject('NOT_AUTHORIZED', `signer ${signerId} is not an active identity`);
    if (!signer.publicKeyPem) return reject('NOT_AUTHORIZED', `signer ${signerId} has no registered key`);
    if (!verifyCanonical(signer.publicKeyPem, payload, evidence.signature))
      reject('BAD_SIGNATURE', `signature by ${signerId} does not verify`);
    return `signature:${signerId}`;
  }

  const caller = callerId(ctx);
  if (patient.fabricId !== undefined && patient.fabricId === caller) return `caller:${patient.id}`;
  for (const id of delegates) {
    const d = await loadIdentity(ctx, id);
    if (d && d.status === 'active' && d.fabricId !== undefined && d.fabricId === caller)
      return `caller:${id}`;
  }
  return reject(
    'NOT_AUTHORIZED',
    `caller is neither patient ${patient.id} nor one of their delegates, and no signature was given`,
  );
}
