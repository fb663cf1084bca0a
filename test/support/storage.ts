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

/** Migrated storage with its own keyring: in-memory PGlite, or a fresh database on TEST_DATABASE_URL. */
export async function openTestStorage(): Promise<TestStorage> {
  const server = testServerUrl();
  let db: Database;
  let drop = async () => undefined as void;
  let databaseUrl: string | undefined;
  if (server) {
    const fresh = await createFreshDatabase(server);
    db = new PostgresDatabase(fresh.url);
    drop = fresh.drop;
    databaseUrl = fresh.url;
  } else {
    db = await PgliteDatabase.open();
  }
  await migrate(db, migrations);
  const keyring = LocalKeyringProvider.openOrCreate(
    join(mkdtempSync(join(tmpdir(), 'gw-keys-')), 'keyring.json'),
  );
  const storage = createStorage(db, keyring);
  return {
    ...storage,
    databaseUrl,
    close: async () => {
      await db.close();
      await drop();
    },
  };
}
