import { mkdtempSync, rmSync } from 'node:fs';
import type { DestinationStream } from 'pino';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGateway, type Gateway } from '../../apps/fhir-gateway/src/app.factory.js';
import { AuthModule } from '../../apps/fhir-gateway/src/auth/auth.module.js';
import { ClientRepository } from '../../apps/fhir-gateway/src/auth/client.repository.js';
import type { PublicJwks } from '../../apps/fhir-gateway/src/auth/jwks.js';
import { loadConfig } from '../../apps/fhir-gateway/src/config/config.js';
import { createFreshDatabase, testServerUrl } from './database.js';
import { freePort } from './net.js';
import { makeTestClient, requestToken } from './smart-client.js';

export interface RunningGateway {
  gateway: Gateway;
  /** Server root, e.g. http://127.0.0.1:40123 */
  baseUrl: string;
  fhirUrl: string;
  databaseUrl?: string;
  /** Registers a fresh SMART client allowed `scopes` and returns an access token from the real token endpoint. */
  token(scopes?: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * The whole gateway, listening on 127.0.0.1 with the real SMART auth module: on a fresh PGlite data dir by
 * default, on a fresh database of TEST_DATABASE_URL when that is set. close() stops it, drops the fresh
 * database and removes the temporary data dir (keyring, dev client key, PGlite files); a process that
 * exits without close() (a bench server stopped early) still removes the dir.
 */
export async function startTestGateway(
  env: Record<string, string> = {},
  options: { logDestination?: DestinationStream } = {},
): Promise<RunningGateway> {
  const port = await freePort();
  const server = testServerUrl();
  const fresh = server ? await createFreshDatabase(server) : undefined;
  const dataDir = mkdtempSync(join(tmpdir(), 'gw-e2e-'));
  const removeDataDir = () => rmSync(dataDir, { recursive: true, force: true });
  process.once('exit', removeDataDir);
  const cleanUp = async (gateway?: Gateway) => {
    try {
      await gateway?.close();
      await fresh?.drop();
    } finally {
      process.removeListener('exit', removeDataDir);
      removeDataDir();
    }
  };
  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: String(port),
    DATA_DIR: dataDir,
    LOG_LEVEL: 'silent',
    ...(fresh ? { DATABASE_URL: fresh.url } : {}),
    ...env,
  });
  let gateway: Gateway | undefined;
  try {
    gateway = await createGateway(config, () => AuthModule, options);
    await gateway.app.listen({ host: '127.0.0.1', port });
  } catch (e) {
    await cleanUp(gateway).catch(() => undefined);
    throw e;
  }
  const started = gateway;
  return {
    gateway: started,
    baseUrl: config.baseUrl,
    fhirUrl: `${config.baseUrl}/fhir`,
    databaseUrl: fresh?.url,
    token: async (scopes = 'system/*.cruds') => {
      const client = await makeTestClient();
      await new ClientRepository(started.storage.db).insert({
        id: client.clientId,
        name: 'e2e test client',
        jwks: client.publicJwks as PublicJwks,
        scopes,
      });
      return requestToken(config.baseUrl, client, scopes);
    },
    close: () => cleanUp(started),
  };
}
