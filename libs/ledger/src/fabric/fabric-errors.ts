import { status as GrpcStatus } from '@grpc/grpc-js';
import { CommitStatusError, EndorseError, GatewayError } from '@hyperledger/fabric-gateway';
import { parseRejection } from '../contracts/contract-error.js';
import { LedgerError } from '../ledger.error.js';

/** Fabric transaction validation codes that mean "read set was stale": a new proposal may pass. */
export const MVCC_READ_CONFLICT = 11;
export const PHANTOM_READ_CONFLICT = 12;

// SubmitError is exported as a type only; it names itself.
const isSubmitError = (e: GatewayError): e is GatewayError & { transactionId: string } =>
  e.name === 'SubmitError';

function fullText(e: GatewayError): string {
  return [e.message, ...e.details.map((d) => `${d.mspId}@${d.address}: ${d.message}`)].join('\n');
}

/**
 * Maps a Fabric Gateway failure onto the port's codes. The contract's own rejection travels as
 * `REJECTED[reason]` inside the chaincode error message (contracts/contract-error.ts); gRPC
 * status says whether the network was reachable and whether the deadline passed.
 */
export function toLedgerError(e: unknown, what: string, transactionId?: string): LedgerError {
  if (e instanceof LedgerError) return e;
  if (e instanceof GatewayError) {
    const text = fullText(e);
    const txId =
      transactionId ??
      (e instanceof EndorseError || isSubmitError(e) || e instanceof CommitStatusError
        ? e.transactionId
        : undefined);
    const opts = { cause: e, ...(txId ? { transactionId: txId } : {}) };
    const rejection = parseRejection(text);
    if (rejection)
      return new LedgerError('REJECTED_BY_CONTRACT', `REJECTED[${rejection.reason}] ${rejection.message}`, {
        ...opts,
        reason: rejection.reason,
      });
    const code = e.code as GrpcStatus;
    if (code === GrpcStatus.DEADLINE_EXCEEDED) {
      return new LedgerError(
        'TIMEOUT',
        `${what}: deadline exceeded${isSubmitError(e) || e instanceof CommitStatusError ? ' (outcome unknown)' : ''}`,
        opts,
      );
    }
    if (code === GrpcStatus.UNAVAILABLE || code === GrpcStatus.CANCELLED)
      return new LedgerError('UNAVAILABLE', `${what}: ${e.message}`, opts);
    if (isSubmitError(e))
      return new LedgerError(
        'UNAVAILABLE',
        `${what}: could not hand the transaction to the ordering service: ${text}`,
        opts,
      );
    if (/connection refused|failed to connect|unavailable|no endorsing peers|not connected/i.test(text))
      return new LedgerError('UNAVAILABLE', `${what}: ${text}`, opts);
    return new LedgerError('ENDORSEMENT_FAILED', `${what}: ${text}`, opts);
  }
  return new LedgerError('UNAVAILABLE', `${what}: ${e instanceof Error ? e.message : String(e)}`, {
    cause: e,
  });
}
