// Child process for the crash test: submits transactions forever and prints each acknowledged
// transaction id; the parent kills it with SIGKILL at a random moment.
import { EmbeddedLedger } from './embedded-ledger.js';

const dir = process.argv[2] as string;
const ledger = await EmbeddedLedger.open({
  dir,
  identity: { mspId: 'Org1MSP', id: 'x509::/CN=crash::/CN=ca' },
});
let i = 0;
for (;;) {
  const batch = Array.from({ length: 4 }, () => {
    const id = `dev-${process.pid}-${i++}`;
    return ledger
      .submit({
        contract: 'identity',
        fn: 'register',
        args: [JSON.stringify({ id, kind: 'device', org: 'Org1MSP', role: 'monitor' })],
      })
      .then((r) => process.stdout.write(`ACK ${id} ${r.transactionId}\n`));
  });
  await Promise.all(batch);
}
