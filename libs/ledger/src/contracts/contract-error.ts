/**
 * Why a contract refused a call. The reason travels inside the error message as
 * `REJECTED[<reason>] <text>` because Fabric only carries a message string from chaincode back
 * to the client (chaincode response status 500 + message); both adapters parse it back.
 */
export type RejectionReason =
  | 'INVALID_INPUT'
  | 'NOT_AUTHORIZED'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'BAD_SIGNATURE'
  | 'NOT_GROWING'
  | 'VERSION_MISMATCH'
  | 'REVOKED'
  | 'READ_ONLY'
  | 'UNKNOWN_FUNCTION';

const MARKER = /REJECTED\[([A-Z_]+)\]\s*([^\n]*)/;

export class ContractRejection extends Error {
  override readonly name = 'ContractRejection';
  constructor(
    readonly reason: RejectionReason,
    text: string,
  ) {
    super(`REJECTED[${reason}] ${text}`);
  }
}

export function reject(reason: RejectionReason, text: string): never {
  throw new ContractRejection(reason, text);
}

/** Finds a rejection marker in any error text (e.g. a Fabric endorsement error's details). */
export function parseRejection(text: string): { reason: string; message: string } | undefined {
  const m = MARKER.exec(text);
  return m ? { reason: m[1] ?? 'UNKNOWN', message: m[2] ?? '' } : undefined;
}
