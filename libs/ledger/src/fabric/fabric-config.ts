import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import type { FabricLedgerOptions } from './fabric-ledger.js';
import { pemFilesFromMspDir } from './fabric-identity.js';

/**
 * The connection file `npm run fabric:up` writes (network/.run/connection.json), also the format
 * to describe an existing network: peers (endpoint, TLS root certificate, optional TLS host name)
 * and client identities (MSP id and MSP folder with signcerts/ and keystore/).
 */
const connectionSchema = z.object({
  channel: z.string(),
  chaincode: z.string(),
  peers: z.record(
    z.string(),
    z.object({ endpoint: z.string(), hostOverride: z.string().optional(), tlsRootCert: z.string() }),
  ),
  identities: z.record(z.string(), z.object({ mspId: z.string(), dir: z.string() })),
});
export type FabricConnectionFile = z.infer<typeof connectionSchema>;

export async function readConnectionFile(path: string): Promise<FabricConnectionFile> {
  return connectionSchema.parse(JSON.parse(await readFile(path, 'utf8')));
}

export async function fabricOptionsFor(
  conn: FabricConnectionFile,
  peer: string,
  identity: string,
  extra: Partial<FabricLedgerOptions> = {},
): Promise<FabricLedgerOptions> {
  const p = conn.peers[peer];
  const id = conn.identities[identity];
  if (!p) throw new Error(`no peer ${peer} in the connection file`);
  if (!id) throw new Error(`no identity ${identity} in the connection file`);
  return {
    peerEndpoint: p.endpoint,
    ...(p.hostOverride ? { peerHostOverride: p.hostOverride } : {}),
    tlsRootCertPath: p.tlsRootCert,
    identity: await pemFilesFromMspDir(id.mspId, id.dir),
    channel: conn.channel,
    chaincode: conn.chaincode,
    ...extra,
  };
}
