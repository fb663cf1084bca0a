// Waits until each peer's gateway can plan an endorsement that satisfies the chaincode's policy,
// i.e. service discovery has learnt the other hospital's peer through gossip. A fresh network
// answers queries well before that. Endorses a read-only proposal (nothing is ordered).
//   node wait-ready.mjs <connection.json> [timeout seconds]
import { readFile, readdir } from 'node:fs/promises';
import { createPrivateKey } from 'node:crypto';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { connect, hash, signers } from '@hyperledger/fabric-gateway';

const [connPath, timeoutArg] = process.argv.slice(2);
const conn = JSON.parse(await readFile(connPath, 'utf8'));
const deadline = Date.now() + Number(timeoutArg ?? 120) * 1000;
const first = async (dir) => join(dir, (await readdir(dir)).sort()[0]);

for (const org of ['org1', 'org2']) {
  const peer = conn.peers[org];
  const id = conn.identities[org];
  const client = new grpc.Client(
    peer.endpoint,
    grpc.credentials.createSsl(await readFile(peer.tlsRootCert)),
    {
      'grpc.ssl_target_name_override': peer.hostOverride,
    },
  );
  const gateway = connect({
    client,
    identity: { mspId: id.mspId, credentials: await readFile(await first(join(id.dir, 'signcerts'))) },
    signer: signers.newPrivateKeySigner(
      createPrivateKey(await readFile(await first(join(id.dir, 'keystore')))),
    ),
    hash: hash.sha256,
  });
  const contract = gateway.getNetwork(conn.channel).getContract(conn.chaincode);
  let last;
  for (;;) {
    try {
      await contract.newProposal('identity:whoami').endorse({ deadline: Date.now() + 5000 });
      break;
    } catch (e) {
      last = e;
      if (Date.now() > deadline) {
        console.error(`${org}: endorsement still impossible: ${last?.message}`);
        process.exit(1);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  gateway.close();
  client.close();
}
