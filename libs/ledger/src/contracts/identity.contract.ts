import { Context } from 'fabric-contract-api';
import { Info, Returns, Transaction } from './annotations.js';
import { BaseContract } from './base.contract.js';
import { reject } from './contract-error.js';
import { check, evidenceSchema, identityInputSchema, opaqueId } from './schemas.js';
import { keyFingerprint, publicKeyFromPem } from './signature.js';
import { callerId, callerMsp, emit, parseArg, putJson, txTime } from './tx-context.js';
import { assertPatientAuthority } from './patient-authority.js';
import { identityKey, loadIdentity, type IdentityRecord } from './identity.store.js';

/**
 * Registry of clients, practitioners, devices, gateways and (pseudonymous) patients with their
 * organisation, role and public-key fingerprint. An organisation vouches only for its own
 * identities: the caller's MSP must be the record's `org`. MSP membership is each hospital's
 * admission control (its CA issues the certificates), so no other org can register or revoke
 * identities in its name.
 */
@Info({ title: 'IdentityContract', description: 'Identity registrations and revocations' })
export class IdentityContract extends BaseContract {
  constructor() {
    super('identity');
  }

  @Transaction()
  @Returns('string')
  async register(ctx: Context, recordJson: string): Promise<string> {
    const input = parseArg(recordJson, 'identity', check(identityInputSchema));
    if (input.org !== callerMsp(ctx))
      reject('NOT_AUTHORIZED', `only ${input.org} may register its identities`);
    if (input.publicKeyPem !== undefined) {
      let fp: string;
      try {
        fp = keyFingerprint(publicKeyFromPem(input.publicKeyPem));
      } catch {
        return reject('INVALID_INPUT', 'publicKeyPem is not a public key');
      }
      if (input.keyFingerprint !== undefined && input.keyFingerprint !== fp)
        reject('INVALID_INPUT', 'keyFingerprint does not match publicKeyPem');
      input.keyFingerprint = fp;
    }
    if (await loadIdentity(ctx, input.id)) reject('ALREADY_EXISTS', `identity ${input.id} exists`);
    const record: IdentityRecord = {
      ...input,
      status: 'active',
      registeredAt: txTime(ctx),
      registeredBy: callerId(ctx),
      ...(input.kind === 'patient' ? { delegates: [], seq: 0 } : {}),
    };
    await putJson(ctx, identityKey(ctx, input.id), record);
    emit(ctx, 'IdentityRegistered', {
      id: record.id,
      kind: record.kind,
      org: record.org,
      role: record.role,
      keyFingerprint: record.keyFingerprint,
    });
    return JSON.stringify(record);
  }

  @Transaction()
  @Returns('string')
  async revoke(ctx: Context, id: string): Promise<string> {
    const record = await loadIdentity(ctx, parseArg(JSON.stringify(id), 'id', check(opaqueId)));
    if (!record) return reject('NOT_FOUND', `identity ${id} not found`);
    if (record.org !== callerMsp(ctx))
      reject('NOT_AUTHORIZED', `only ${record.org} may revoke its identities`);
    if (record.status === 'revoked') reject('REVOKED', `identity ${id} already revoked`);
    const next: IdentityRecord = { ...record, status: 'revoked', revokedAt: txTime(ctx) };
    await putJson(ctx, identityKey(ctx, id), next);
    emit(ctx, 'IdentityRevoked', { id, org: record.org, revokedAt: next.revokedAt });
    return JSON.stringify(next);
  }

  /**
   * The patient lets another registered identity grant and revoke for them. Signed payload:
   * `{op:'delegate'|'undelegate', patientId, delegateId, seq}` with seq = current seq + 1.
   */
  @Transaction()
  @Returns('string')
  async setDelegate(
    ctx: Context,
    patientId: string,
    delegateId: string,
    allow: string,
    evidenceJson: string,
  ): Promise<string> {
    const evidence = parseArg(evidenceJson || '{}', 'evidence', check(evidenceSchema));
    const patient = await loadIdentity(ctx, patientId);
    if (!patient || patient.kind !== 'patient') return reject('NOT_FOUND', `patient ${patientId} not found`);
    const delegate = await loadIdentity(ctx, delegateId);
    if (!delegate || delegate.status !== 'active')
      return reject('NOT_FOUND', `identity ${delegateId} not found or revoked`);
    const grantIt = allow === 'true';
    const seq = (patient.seq ?? 0) + 1;
    const payload = { op: grantIt ? 'delegate' : 'undelegate', patientId, delegateId, seq };
    // Only the patient personally may change delegation: delegates cannot add delegates.
    await assertPatientAuthority(ctx, patient, payload, evidence, { allowDelegates: false });
    const set = new Set(patient.delegates ?? []);
    if (grantIt) set.add(delegateId);
    else set.delete(delegateId);
    const next: IdentityRecord = { ...patient, delegates: [...set].sort(), seq };
    await putJson(ctx, identityKey(ctx, patientId), next);
    emit(ctx, grantIt ? 'DelegateAuthorized' : 'DelegateRemoved', { patientId, delegateId, seq });
    return JSON.stringify(next);
  }

  @Transaction(false)
  @Returns('string')
  async get(ctx: Context, id: string): Promise<string> {
    const record = await loadIdentity(ctx, id);
    if (!record) return reject('NOT_FOUND', `identity ${id} not found`);
    return JSON.stringify(record);
  }

  /** The caller's Fabric principal, as the contracts see it (for `fabricId` in registrations). */
  @Transaction(false)
  @Returns('string')
  whoami(ctx: Context): Promise<string> {
    return Promise.resolve(JSON.stringify({ mspId: callerMsp(ctx), fabricId: callerId(ctx) }));
  }
}
