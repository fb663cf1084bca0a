import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalKeyringProvider } from '#crypto';
import type { Database } from '../../apps/fhir-gateway/src/database/database.js';
import { migrations } from '../../apps/fhir-gateway/src/database/migrations/index.js';
import { migrate } from '../../apps/fhir-gateway/src/database/migrator.js';
import { PgliteDatabase } from '../../apps/fhir-gateway/src/database/pglite.database.js';
import { PostgresDatabase } from '../../apps/fhir-gateway/src/database/postgres.database.js';
import { createStorage, type Storage } from '../../apps/fhir-gateway/src/store/storage.factory.js';
import { createFreshDatabase, testServerUrl } from './database.js';

export interface TestStorage extends Storage {
  /** The connection URL of the fresh database on a real server, if the suite runs on one. */
  databaseUrl?: string;
  close(): Promise<void>;
}

/**
 * A migrated database of the suite's own: in-memory PGlite, or a fresh database on TEST_DATABASE_URL that
 * close() drops again.
 */
export async function openTestDatabase(): Promise<Database & { url?: string }> {
  const server = testServerUrl();
  if (!server) {
    const db = await PgliteDatabase.open();
    await migrate(db, migrations);
    return db;
  }
  const fresh = await createFreshDatabase(server);
  const db = new PostgresDatabase(fresh.url);
  await migrate(db, migrations);
  const close = db.close.bind(db);
  return Object.assign(db, {
    url: fresh.url,
    close: async () => {
      await close();
      await fresh.drop();
    },
  });
}

/**
 * Migrated storage with its own keyring on a database from openTestDatabase(). The keyring lives in a
 * temporary directory that close() removes again (it is key material).
 */
export async function openTestStorage(): Promise<TestStorage> {
  const db = await openTestDatabase();
  const keyDir = mkdtempSync(join(tmpdir(), 'gw-keys-'));
  const removeKeys = () => {
    process.removeListener('exit', removeKeys);
    rmSync(keyDir, { recursive: true, force: true });
  };
  // Also when the process ends without close() (a worker that exits early).
  process.once('exit', removeKeys);
  let storage: Storage;
  try {
    storage = createStorage(db, LocalKeyringProvider.openOrCreate(join(keyDir, 'keyring.json')));
  } catch (e) {
    removeKeys();
    await db.close();
    throw e;
  }
  return {
    ...storage,
    databaseUrl: db.url,
    close: async () => {
      try {
        await db.close();
      } finally {
        removeKeys();
      }
    },
  };
}
