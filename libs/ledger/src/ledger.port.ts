import type { LedgerError } from './ledger.error.js';

/** The contracts deployed in the one chaincode package (see contracts/index.ts). */
export type ContractName = 'consent' | 'anchor' | 'identity';

export interface LedgerCall {
  contract: ContractName;
  /** Transaction function name inside the contract, e.g. `grant`. */
  fn: string;
  /** Arguments as strings: the contracts take canonical JSON. */
  args?: readonly string[];
  /** Deadline for the whole call in milliseconds; the adapter's default when absent. */
  timeoutMs?: number;
}

export interface SubmitResult {
  transactionId: string;
  blockNumber: bigint;
  /** The contract's return value (UTF-8). */
  result: string;
}

/**
 * Where an event consumer has got to. Resuming from it delivers every later event exactly once:
 * events in `blockNumber` up to and including `transactionId` are skipped.
 * Same meaning as @hyperledger/fabric-gateway's Checkpoint.
 */
export interface Checkpoint {
  blockNumber: bigint;
  transactionId?: string;
}

export interface LedgerEvent {
  blockNumber: bigint;
  transactionId: string;
  /** Contract-defined event name, e.g. `ConsentGranted`. */
  name: string;
  /** Canonical JSON payload. */
  payload: string;
}

export interface EventStreamOptions {
  /** Resume after this point. Wins over `startBlock`. */
  checkpoint?: Checkpoint;
  /** Start at this block (inclusive). Default: the next block to be committed. */
  startBlock?: bigint;
}

/** A live, ordered event stream. `close()` ends the iteration. */
export interface LedgerEventStream extends AsyncIterable<LedgerEvent> {
  close(): void;
}

/**
 * The ledger port (ARCHITECTURE.md, Ledger). Two adapters implement it and pass one conformance
 * suite: EmbeddedLedger (in-process) and FabricLedger (Hyperledger Fabric v3).
 * All failures are {@link LedgerError}s.
 */
export interface Ledger {
  /** Endorse, order and commit. Resolves once the transaction is committed and valid. */
  submit(call: LedgerCall): Promise<SubmitResult>;
  /** Read-only query against committed state. Nothing is ordered. */
  evaluate(call: LedgerCall): Promise<string>;
  /** Chaincode events in commit order. */
  events(options?: EventStreamOptions): LedgerEventStream;
  close(): Promise<void>;
}

export type { LedgerError };
