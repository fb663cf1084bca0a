import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { AppConfig } from '../config/config.js';
import type { ClientRepository } from './client.repository.js';
import { publicPart, type SigningAlg } from './jwks.js';

export const DEV_CLIENT_ID = 'dev-client';
export const DEV_CLIENT_SCOPE = 'system/*.cruds';

/** What `npm run token` needs to authenticate as the dev client: its id, key id and private key. */
export interface DevClientFile {
  format: 'fhir-gateway-dev-client/1';
  client_id: string;
  alg: SigningAlg;
  kid: string;
  private_jwk: JWK;
}

export function devClientPath(config: Pick<AppConfig, 'dataDir'>): string {
  return join(config.dataDir, 'dev-client.json');
}

/**
 * The newcomer's client on the embedded default (no DATABASE_URL): registered on start with
 * `system/*.cruds`, its private key written to DATA_DIR/dev-client.json with mode 0600. The file is the
 * source of truth: if the database was reset the client is registered again with the same key; if the
 * file was deleted a new key replaces the registered one. A client the admin disabled stays disabled.
 * Never on a real Postgres server: production clients are registered with the CLI.
 */
export async function ensureDevClient(
  config: Pick<AppConfig, 'dataDir' | 'database'>,
  clients: ClientRepository,
): Promise<boolean> {
  if (config.database.kind !== 'pglite' || config.database.dataDir === undefined) return false;
  const path = devClientPath(config);
  const file = readDevClientFile(path) ?? (await createDevClientFile(path));
  const jwks = { keys: [publicPart(file.private_jwk, file.kid, file.alg)] };
  const existing = await clients.findById(DEV_CLIENT_ID);
  if (!existing) {
    await clients.insert({
      id: DEV_CLIENT_ID,
      name: 'Local development client',
      jwks,
      scopes: DEV_CLIENT_SCOPE,
    });
  } else if (!existing.jwks.keys.some((k) => k.kid === file.kid)) {
    await clients.update({ id: DEV_CLIENT_ID, name: existing.name, jwks, scopes: existing.scopes });
  }
  return true;
}

export function readDevClientFile(path: string): DevClientFile | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const file = JSON.parse(text) as DevClientFile;
  if (file.format !== 'fhir-gateway-dev-client/1' || typeof file.kid !== 'string' || !file.private_jwk) {
    throw new Error(`${path} is not a dev client file`);
  }
  return file;
}

async function createDevClientFile(path: string): Promise<DevClientFile> {
  const alg: SigningAlg = 'ES384';
  const pair = await generateKeyPair(alg, { extractable: true });
  const pub = await exportJWK(pair.publicKey);
  const file: DevClientFile = {
    format: 'fhir-gateway-dev-client/1',
    client_id: DEV_CLIENT_ID,
    alg,
    kid: await calculateJwkThumbprint(pub, 'sha256'),
    private_jwk: await exportJWK(pair.privateKey),
  };
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(file, null, 2), { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
  return file;
}
