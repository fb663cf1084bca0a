import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { readConnectionFile, fabricOptionsFor } from './fabric-config.js';
import { FabricLedger, type FabricLedgerOptions } from './fabric-ledger.js';

/** Helpers for the suites that run against the local network (network/up.sh). */
export const networkDir = fileURLToPath(new URL('../../network/', import.meta.url));
export const connectionPath = process.env.FABRIC_CONNECTION_FILE ?? `${networkDir}.run/connection.json`;

export async function connectAs(
  peer: 'org1' | 'org2',
  identity: 'org1' | 'org1Other' | 'org2',
  extra: Partial<FabricLedgerOptions> = {},
): Promise<FabricLedger> {
  const conn = await readConnectionFile(connectionPath);
  return FabricLedger.connect(await fabricOptionsFor(conn, peer, identity, extra));
}

const run = promisify(execFile);

/** Stops or starts one node of the local network (network/node.sh). */
export async function node(
  action: 'stop' | 'start',
  name: 'orderer' | 'peer0.org1' | 'peer0.org2',
): Promise<void> {
  await run('bash', [`${networkDir}node.sh`, action, name], { timeout: 60_000 });
}
