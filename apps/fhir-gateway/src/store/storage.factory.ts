import { DataKeyService, EnvKeyProvider, LocalKeyringProvider, type KeyProvider } from '#crypto';
import type { AppConfig } from '../config/config.js';
import type { Database } from '../database/database.js';
import { migrations } from '../database/migrations/index.js';
import { migrate } from '../database/migrator.js';
import { PgliteDatabase } from '../database/pglite.database.js';
import { PostgresDatabase } from '../database/postgres.database.js';
import { DataKeyRepository } from './data-key.repository.js';
import { ResourceStore } from './resource.store.js';

export interface Storage {
  db: Database;
  provider: KeyProvider;
  keys: DataKeyService;
  store: ResourceStore;
}

export async function openDatabase(config: AppConfig): Promise<Database> {
  const db =
    config.database.kind === 'postgres'
      ? new PostgresDatabase(config.database.url)
      : await PgliteDatabase.open(config.database.dataDir);
  await migrate(db, migrations);
  return db;
}

export function openKeyProvider(config: AppConfig): KeyProvider {
  return config.keys.kind === 'env'
    ? new EnvKeyProvider(config.keys.spec)
    : LocalKeyringProvider.openOrCreate(config.keys.path);
}

export function createStorage(db: Database, provider: KeyProvider): Storage {
  const keys = new DataKeyService(provider, new DataKeyRepository(db));
  return { db, provider, keys, store: new ResourceStore(db, keys) };
}
