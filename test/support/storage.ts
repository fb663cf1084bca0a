import { mkdtempSync } from 'node:fs';
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

/** Migrated storage with its own keyring on a database from openTestDatabase(). */
export async function openTestStorage(): Promise<TestStorage> {
  const db = await openTestDatabase();
  const keyring = LocalKeyringProvider.openOrCreate(
    join(mkdtempSync(join(tmpdir(), 'gw-keys-')), 'keyring.json'),
  );
  const storage = createStorage(db, keyring);
  return {
    ...storage,
    databaseUrl: db.url,
    close: () => db.close(),
  };
}
