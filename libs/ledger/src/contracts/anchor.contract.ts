import { Context } from 'fabric-contract-api';
import { Info, Returns, Transaction } from './annotations.js';
import { BaseContract } from './base.contract.js';
import { reject } from './contract-error.js';
import { loadIdentity } from './identity.store.js';
import { check, treeHeadSchema, type TreeHeadInput } from './schemas.js';
import { verifyCanonical } from './signature.js';
import { callerId, callerMsp, emit, getJson, parseArg, putJson, txTime } from './tx-context.js';

export interface AnchorRecord extends TreeHeadInput {
  anchoredAt: string;
  anchoredBy: string;
}

// Zero-padded so composite-key order equals numeric order.
const pad = (n: number): string => n.toString().padStart(16, '0');
const headKey = (ctx: Context, logId: string, size: number): string =>
  ctx.stub.createCompositeKey('anchor', [logId, pad(size)]);
const latestKey = (ctx: Context, logId: string): string =>
  ctx.stub.createCompositeKey('anchor-latest', [logId]);

/** What a gateway signs for a tree head: RFC 6962 §3.5 fields, as canonical JSON. */
export function treeHeadSigningPayload(
  h: Pick<TreeHeadInput, 'logId' | 'treeSize' | 'rootHash' | 'timestamp'>,
): unknown {
  return { logId: h.logId, rootHash: h.rootHash, timestamp: h.timestamp, treeSize: h.treeSize };
}

/**
 * Signed tree heads of the audit Merkle logs (RFC 6962/9162). Each head is stored under its own
 * key (log id + size). A per-log "latest" pointer is read and written by every anchor: two
 * anchors of the same log racing therefore conflict under MVCC, which is what makes the
 * "size must grow" check sound; anchors of different logs never touch the same keys.
 */
@Info({ title: 'AnchorContract', description: 'Signed tree heads of the audit log' })
export class AnchorContract extends BaseContract {
  constructor() {
    super('anchor');
  }

  @Transaction()
  @Returns('string')
  async anchor(ctx: Context, headJson: string): Promise<string> {
    const head = parseArg(headJson, 'tree head', check(treeHeadSchema));
    const caller = callerId(ctx);
    const signer = await loadIdentity(ctx, head.signer);
    if (!signer || signer.kind !== 'gateway' || signer.status !== 'active')
      return reject('NOT_AUTHORIZED', `${head.signer} is not an active gateway identity`);
    // Only a registered gateway may anchor: the submitter must be the signer itself, or a
    // member of the signer's organisation when the signer has no bound Fabric principal.
    if (signer.fabricId !== undefined ? signer.fabricId !== caller : signer.org !== callerMsp(ctx)) {
      reject('NOT_AUTHORIZED', 'caller is not the registered gateway that signed the head');
    }
    if (!signer.publicKeyPem) return reject('NOT_AUTHORIZED', `${head.signer} has no registered key`);
    if (!verifyCanonical(signer.publicKeyPem, treeHeadSigningPayload(head), head.signature))
      reject('BAD_SIGNATURE', 'tree head signature does not verify');

    const latest = await getJson<{ treeSize: number }>(ctx, latestKey(ctx, head.logId));
    if (latest && head.treeSize <= latest.treeSize)
      reject('NOT_GROWING', `tree size ${head.treeSize} does not grow past ${latest.treeSize}`);

    const record: AnchorRecord = { ...head, anchoredAt: txTime(ctx), anchoredBy: caller };
    await putJson(ctx, headKey(ctx, head.logId, head.treeSize), record);
    await putJson(ctx, latestKey(ctx, head.logId), { treeSize: head.treeSize });
    emit(ctx, 'TreeHeadAnchored', {
      logId: head.logId,
      treeSize: head.treeSize,
      rootHash: head.rootHash,
      signer: head.signer,
      anchoredAt: record.anchoredAt,
    });
    return JSON.stringify(record);
  }

  @Transaction(false)
  @Returns('string')
  async get(ctx: Context, logId: string, treeSize: string): Promise<string> {
    const record = await getJson<AnchorRecord>(ctx, headKey(ctx, logId, Number(treeSize)));
    if (!record) return reject('NOT_FOUND', `no head of size ${treeSize} for log ${logId}`);
    return JSON.stringify(record);
  }

  @Transaction(false)
  @Returns('string')
  async latest(ctx: Context, logId: string): Promise<string> {
    const latest = await getJson<{ treeSize: number }>(ctx, latestKey(ctx, logId));
    if (!latest) return reject('NOT_FOUND', `no head for log ${logId}`);
    return this.get(ctx, logId, String(latest.treeSize));
  }
}
