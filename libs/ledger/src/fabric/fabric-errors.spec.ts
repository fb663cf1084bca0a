import { status } from '@grpc/grpc-js';
import { EndorseError, GatewayError } from '@hyperledger/fabric-gateway';
import { describe, expect, it } from 'vitest';
import { toLedgerError } from './fabric-errors.js';

// Minimal grpc ServiceError shape for constructing gateway errors.
const cause = (code: number, details = '') =>
  Object.assign(new Error(details), { code, details, metadata: undefined as never });

describe('toLedgerError (Fabric Gateway -> LedgerError)', () => {
  it('reads the contract rejection out of the endorser detail messages', () => {
    const e = new EndorseError({
      code: status.ABORTED,
      details: [
        {
          address: '127.0.0.1:7051',
          mspId: 'Org1MSP',
          message: 'chaincode response 500, REJECTED[NOT_GROWING] tree size 5 does not grow past 10',
        },
      ],
      cause: cause(status.ABORTED),
      message: '10 ABORTED: failed to endorse transaction',
      transactionId: 'tx1',
    });
    expect(toLedgerError(e, 'submit')).toMatchObject({
      code: 'REJECTED_BY_CONTRACT',
      reason: 'NOT_GROWING',
      transactionId: 'tx1',
    });
  });

  it('maps deadline and reachability to TIMEOUT and UNAVAILABLE, anything else to ENDORSEMENT_FAILED', () => {
    const g = (code: number, message: string) =>
      new GatewayError({ code, details: [], cause: cause(code), message });
    expect(toLedgerError(g(status.DEADLINE_EXCEEDED, '4 DEADLINE_EXCEEDED'), 'x').code).toBe('TIMEOUT');
    expect(toLedgerError(g(status.UNAVAILABLE, '14 UNAVAILABLE: connection refused'), 'x').code).toBe(
      'UNAVAILABLE',
    );
    expect(
      toLedgerError(g(status.FAILED_PRECONDITION, '9 FAILED_PRECONDITION: no combination of peers'), 'x')
        .code,
    ).toBe('ENDORSEMENT_FAILED');
    expect(toLedgerError(new Error('boom'), 'x').code).toBe('UNAVAILABLE');
  });
});
