import { Context } from 'fabric-contract-api';
import { Info, Returns, Transaction } from './annotations.js';
import { BaseContract } from './base.contract.js';
import { reject } from './contract-error.js';
import { loadIdentity } from './identity.store.js';
import { assertPatientAuthority } from './patient-authority.js';
import {
  check,
  evidenceSchema,
  grantInputSchema,
  opaqueId,
  type GrantInput,
  type Provision,
} from './schemas.js';
import { emit, getJson, keyHistory, listByPartialKey, parseArg, putJson, txTime } from './tx-context.js';

export interface GrantRecord extends GrantInput {
  status: 'active' | 'revoked';
  /** Actor references of the top-level provision: the index for "list by grantee". */
  grantees: string[];
  updatedAt: string;
  /** Evidence basis, e.g. `signature:<patient id>` or `caller:<delegate id>`. */
  authorizedBy: string;
}

const grantKey = (ctx: Context, grantId: string): string => ctx.stub.createCompositeKey('grant', [grantId]);
const byPatientKey = (ctx: Context, patientId: string, grantId: string): string =>
  ctx.stub.createCompositeKey('grant-by-patient', [patientId, grantId]);
const byGranteeKey = (ctx: Context, grantee: string, grantId: string): string =>
  ctx.stub.createCompositeKey('grant-by-grantee', [grantee, grantId]);
const INDEX_MARK = Buffer.from([0]);

function granteesOf(p: Provision): string[] {
  return [...new Set((p.actor ?? []).map((a) => a.reference))].sort();
}

/**
 * Patient consent grants, following FHIR R4 Consent (scope patient-privacy) provisions.
 * Only the patient or a delegate may grant or revoke, proven by signed evidence (see
 * patient-authority.ts). The payload signed for a grant is `{op:'grant', grant}` and for a
 * revocation `{op:'revoke', grantId, patientId, version}`; both carry the next version, so an
 * old signature can never be replayed.
 */
@Info({ title: 'ConsentContract', description: 'Patient consent grants (FHIR R4 Consent provisions)' })
export class ConsentContract extends BaseContract {
  constructor() {
    super('consent');
  }

  @Transaction()
  @Returns('string')
  async grant(ctx: Context, grantJson: string, evidenceJson: string): Promise<string> {
    const grant = parseArg(grantJson, 'grant', check(grantInputSchema));
    const evidence = parseArg(evidenceJson || '{}', 'evidence', check(evidenceSchema));
    const patient = await loadIdentity(ctx, grant.patientId);
    if (!patient || patient.kind !== 'patient')
      return reject('NOT_FOUND', `patient ${grant.patientId} not registered`);
    const previous = await getJson<GrantRecord>(ctx, grantKey(ctx, grant.grantId));
    if (previous && previous.patientId !== grant.patientId)
      reject('NOT_AUTHORIZED', `grant ${grant.grantId} belongs to another patient`);
    const expected = (previous?.version ?? 0) + 1;
    if (grant.version !== expected)
      reject('VERSION_MISMATCH', `grant ${grant.grantId} version must be ${expected}`);
    const basis = await assertPatientAuthority(ctx, patient, { op: 'grant', grant }, evidence);

    const record: GrantRecord = {
      ...grant,
      status: 'active',
      grantees: granteesOf(grant.provision),
      updatedAt: txTime(ctx),
      authorizedBy: basis,
    };
    await putJson(ctx, grantKey(ctx, grant.grantId), record);
    await ctx.stub.putState(byPatientKey(ctx, grant.patientId, grant.grantId), INDEX_MARK);
    for (const g of previous?.grantees ?? []) {
      if (!record.grantees.includes(g)) await ctx.stub.deleteState(byGranteeKey(ctx, g, grant.grantId));
    }
    for (const g of record.grantees) await ctx.stub.putState(byGranteeKey(ctx, g, grant.grantId), INDEX_MARK);
    emit(ctx, 'ConsentGranted', record);
    return JSON.stringify(record);
  }

  @Transaction()
  @Returns('string')
  async revoke(ctx: Context, grantId: string, version: string, evidenceJson: string): Promise<string> {
    const evidence = parseArg(evidenceJson || '{}', 'evidence', check(evidenceSchema));
    const previous = await getJson<GrantRecord>(ctx, grantKey(ctx, grantId));
    if (!previous) return reject('NOT_FOUND', `grant ${grantId} not found`);
    if (previous.status === 'revoked') reject('REVOKED', `grant ${grantId} already revoked`);
    const v = Number(version);
    if (v !== previous.version + 1)
      reject('VERSION_MISMATCH', `grant ${grantId} version must be ${previous.version + 1}`);
    const patient = await loadIdentity(ctx, previous.patientId);
    if (!patient) return reject('NOT_FOUND', `patient ${previous.patientId} not registered`);
    const basis = await assertPatientAuthority(
      ctx,
      patient,
      { op: 'revoke', grantId, patientId: previous.patientId, version: v },
      evidence,
    );

    const record: GrantRecord = {
      ...previous,
      version: v,
      status: 'revoked',
      updatedAt: txTime(ctx),
      authorizedBy: basis,
    };
    await putJson(ctx, grantKey(ctx, grantId), record);
    // Revoked grants stay listed by patient (for the consent history) but no longer by grantee.
    for (const g of previous.grantees) await ctx.stub.deleteState(byGranteeKey(ctx, g, grantId));
    emit(ctx, 'ConsentRevoked', record);
    return JSON.stringify(record);
  }

  @Transaction(false)
  @Returns('string')
  async get(ctx: Context, grantId: string): Promise<string> {
    const record = await getJson<GrantRecord>(ctx, grantKey(ctx, grantId));
    if (!record) return reject('NOT_FOUND', `grant ${grantId} not found`);
    return JSON.stringify(record);
  }

  @Transaction(false)
  @Returns('string')
  async listByPatient(ctx: Context, patientId: string): Promise<string> {
    parseArg(JSON.stringify(patientId), 'patientId', check(opaqueId));
    return JSON.stringify(
      await this.resolve(ctx, await listByPartialKey(ctx, 'grant-by-patient', [patientId])),
    );
  }

  @Transaction(false)
  @Returns('string')
  async listByGrantee(ctx: Context, grantee: string): Promise<string> {
    parseArg(JSON.stringify(grantee), 'grantee', check(opaqueId));
    return JSON.stringify(
      await this.resolve(ctx, await listByPartialKey(ctx, 'grant-by-grantee', [grantee])),
    );
  }

  /** Every committed version of a grant, oldest first (Fabric history database). */
  @Transaction(false)
  @Returns('string')
  async history(ctx: Context, grantId: string): Promise<string> {
    const entries = await keyHistory<GrantRecord>(ctx, grantKey(ctx, grantId));
    // Fabric returns history newest first; sort by version so both adapters agree.
    entries.sort((a, b) => (a.value?.version ?? 0) - (b.value?.version ?? 0));
    return JSON.stringify(entries);
  }

  private async resolve(ctx: Context, index: { key: string }[]): Promise<GrantRecord[]> {
    const out: GrantRecord[] = [];
    for (const { key } of index) {
      const { attributes } = ctx.stub.splitCompositeKey(key);
      const grantId = attributes[attributes.length - 1];
      if (grantId === undefined) continue;
      const g = await getJson<GrantRecord>(ctx, grantKey(ctx, grantId));
      if (g) out.push(g);
    }
    return out.sort((a, b) => (a.grantId < b.grantId ? -1 : a.grantId > b.grantId ? 1 : 0));
  }
}
