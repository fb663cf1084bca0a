import { createRequire } from 'node:module';
import contractApi from 'fabric-contract-api';

// fabric-contract-api logs every decorator it applies at `info`; in-process (embedded ledger,
// tests, the gateway's JSON logs) that is noise. Default to warnings unless the operator (or,
// for chaincode, the peer) chose a level through CORE_CHAINCODE_LOGGING_LEVEL.
if (process.env.CORE_CHAINCODE_LOGGING_LEVEL === undefined) {
  const logger = createRequire(import.meta.url)('fabric-contract-api/lib/logger.js') as {
    setLevel(level: string): void;
  };
  logger.setLevel('warning');
}

// fabric-contract-api attaches its decorators with Object.assign, which Node's ESM loader cannot
// see as named exports (only Contract and Context are); take them from the CommonJS object.
export const { Info, Returns, Transaction } = contractApi;
