import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ledgerConformance } from '../conformance/ledger-conformance.js';
import { EmbeddedLedger } from './embedded-ledger.js';

ledgerConformance('embedded', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ledger-conf-'));
  const org1 = await EmbeddedLedger.open({
    dir,
    identity: { mspId: 'Org1MSP', id: 'x509::/CN=gateway@org1.example.com::/CN=ca.org1.example.com' },
  });
  return {
    org1,
    org1Other: org1.as({
      mspId: 'Org1MSP',
      id: 'x509::/CN=dr.who@org1.example.com::/CN=ca.org1.example.com',
    }),
    org2: org1.as({ mspId: 'Org2MSP', id: 'x509::/CN=gateway@org2.example.com::/CN=ca.org2.example.com' }),
    org1Msp: 'Org1MSP',
    org2Msp: 'Org2MSP',
    teardown: async () => {
      await org1.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
