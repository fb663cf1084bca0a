/**
 * Every failure the ledger port reports carries one of these codes, never an HTTP status.
 * The app maps them with an exhaustive switch (STYLE.md rule 3).
 */
export type LedgerErrorCode =
  /** Endorsement failed for a reason other than the contract rejecting the call (e.g. policy not met). */
  | 'ENDORSEMENT_FAILED'
  /** MVCC read conflict or phantom read: the proposal was stale when it was validated. A new proposal may succeed. */
  | 'CONFLICT'
  /** A peer, orderer or the embedded store cannot be reached or is closed. */
  | 'UNAVAILABLE'
  /** The call's deadline passed. For submit the outcome is unknown: the transaction may still commit. */
  | 'TIMEOUT'
  /** The contract refused the call (bad input, not authorised, anchor does not grow, bad signature, ...). */
  | 'REJECTED_BY_CONTRACT'
  /** Ordered but marked invalid at commit for a reason other than a conflict. */
  | 'COMMIT_FAILED'
  /** Stored blocks failed verification on open: broken hash link, bad signature, or unreadable data. */
  | 'TAMPERED'
  /** A bad argument given to the port itself (not to the contract). */
  | 'INVALID_ARGUMENT';

export interface LedgerErrorOptions {
  /** Reason code the contract gave, for REJECTED_BY_CONTRACT (see contracts/contract-error.ts). */
  reason?: string;
  transactionId?: string;
  cause?: unknown;
}

export class LedgerError extends Error {
  override readonly name = 'LedgerError';
  readonly reason: string | undefined;
  readonly transactionId: string | undefined;

  constructor(
    readonly code: LedgerErrorCode,
    message: string,
    options: LedgerErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.reason = options.reason;
    this.transactionId = options.transactionId;
  }

  /** True when retrying the same operation (as a new proposal) can succeed. */
  get retryable(): boolean {
    return this.code === 'CONFLICT' || this.code === 'UNAVAILABLE';
  }
}

export function isLedgerError(e: unknown, code?: LedgerErrorCode): e is LedgerError {
  return e instanceof LedgerError && (code === undefined || e.code === code);
}
