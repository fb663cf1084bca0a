import type { Context } from 'fabric-contract-api';
import type { IdentityInput } from './schemas.js';
import { getJson } from './tx-context.js';

export interface IdentityRecord extends IdentityInput {
  status: 'active' | 'revoked';
  registeredAt: string;
  registeredBy: string;
  revokedAt?: string;
  /** Patients only: identities the patient allows to grant and revoke on their behalf. */
  delegates?: string[];
  /** Patients only: bumped by every delegation change, part of the signed payload (no replay). */
  seq?: number;
}

export const identityKey = (ctx: Context, id: string): string =>
  ctx.stub.createCompositeKey('identity', [id]);

export async function loadIdentity(ctx: Context, id: string): Promise<IdentityRecord | undefined> {
  return getJson<IdentityRecord>(ctx, identityKey(ctx, id));
}
