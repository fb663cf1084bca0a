import contractApi from 'fabric-contract-api';

// fabric-contract-api attaches its decorators with Object.assign, which Node's ESM loader cannot
// see as named exports (only Contract and Context are); take them from the CommonJS object.
export const { Info, Returns, Transaction } = contractApi;
