import { AnchorContract } from './anchor.contract.js';
import { ConsentContract } from './consent.contract.js';
import { IdentityContract } from './identity.contract.js';

export { AnchorContract, treeHeadSigningPayload, type AnchorRecord } from './anchor.contract.js';
export { ConsentContract, type GrantRecord } from './consent.contract.js';
export { IdentityContract } from './identity.contract.js';
export type { IdentityRecord } from './identity.store.js';
export { ContractRejection, parseRejection, type RejectionReason } from './contract-error.js';
export type { Evidence, GrantInput, IdentityInput, Provision, TreeHeadInput } from './schemas.js';

/** The chaincode's contracts, in the shape fabric-chaincode-node expects from the package main. */
export const contracts = [ConsentContract, AnchorContract, IdentityContract];
