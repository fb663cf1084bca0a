import { ledgerConformance } from '../conformance/ledger-conformance.js';
import { connectAs } from './fabric-test-network.js';

ledgerConformance('fabric', async () => {
  const [org1, org1Other, org2] = await Promise.all([
    connectAs('org1', 'org1'),
    connectAs('org1', 'org1Other'),
    connectAs('org2', 'org2'),
  ]);
  return {
    org1,
    org1Other,
    org2,
    org1Msp: 'Org1MSP',
    org2Msp: 'Org2MSP',
    teardown: async () => {
      await Promise.all([org1.close(), org1Other.close(), org2.close()]);
    },
  };
});
