export type {
  Checkpoint,
  ContractName,
  EventStreamOptions,
  Ledger,
  LedgerCall,
  LedgerEvent,
  LedgerEventStream,
  SubmitResult,
} from './ledger.port.js';
export { LedgerError, isLedgerError, type LedgerErrorCode } from './ledger.error.js';
export { FileCheckpointer, InMemoryCheckpointer, type Checkpointer } from './checkpointer.js';
export { canonicalJson } from './canonical-json.js';
export {
  EmbeddedLedger,
  type EmbeddedIdentity,
  type EmbeddedLedgerOptions,
} from './embedded/embedded-ledger.js';
export { signCanonical, grantPayload, revokePayload, delegatePayload, signTreeHead } from './signing.js';
export { keyFingerprint } from './contracts/signature.js';
export type {
  AnchorRecord,
  Evidence,
  GrantInput,
  GrantRecord,
  IdentityInput,
  IdentityRecord,
  Provision,
  TreeHeadInput,
} from './contracts/index.js';
export { FabricLedger, type FabricLedgerOptions } from './fabric/fabric-ledger.js';
export { loadPemIdentity, pemFilesFromMspDir, type PemIdentityFiles } from './fabric/fabric-identity.js';
export { readConnectionFile, fabricOptionsFor, type FabricConnectionFile } from './fabric/fabric-config.js';
