import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Database } from '../database/database.js';
import { freshDatabase } from './auth.fixtures.js';
import { ClientRepository } from './client.repository.js';
import { DEV_CLIENT_ID, devClientPath, ensureDevClient, readDevClientFile } from './dev-client.js';

let db: Database;
let clients: ClientRepository;
let dataDir: string;
const embedded = () => ({ dataDir, database: { kind: 'pglite' as const, dataDir: join(dataDir, 'pglite') } });

beforeAll(async () => {
  db = await freshDatabase();
  clients = new ClientRepository(db);
});
afterAll(async () => db.close());
beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'dev-client-'));
  await db.exec('DELETE FROM auth_client');
});
afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

describe('ensureDevClient', () => {
  it('creates the key file (0600) and registers the client with system/*.cruds', async () => {
    expect(await ensureDevClient(embedded(), clients)).toBe(true);
    const file = readDevClientFile(devClientPath(embedded()))!;
    expect(statSync(devClientPath(embedded())).mode & 0o777).toBe(0o600);
    expect(file.private_jwk.d).toBeTypeOf('string');
    const c = (await clients.findById(DEV_CLIENT_ID))!;
    expect(c.scopes).toBe('system/*.cruds');
    expect(c.jwks.keys.map((k) => k.kid)).toEqual([file.kid]);
    expect(c.jwks.keys[0]).not.toHaveProperty('d');
  });

  it('is idempotent across restarts', async () => {
    await ensureDevClient(embedded(), clients);
    const kid = readDevClientFile(devClientPath(embedded()))!.kid;
    await ensureDevClient(embedded(), clients);
    expect(readDevClientFile(devClientPath(embedded()))!.kid).toBe(kid);
    expect((await clients.list()).length).toBe(1);
  });

  it('re-registers the same key after a database reset, and a new key after the file was deleted', async () => {
    await ensureDevClient(embedded(), clients);
    const kid = readDevClientFile(devClientPath(embedded()))!.kid;
    await db.exec('DELETE FROM auth_client');
    await ensureDevClient(embedded(), clients);
    expect((await clients.findById(DEV_CLIENT_ID))!.jwks.keys[0]!.kid).toBe(kid);
    rmSync(devClientPath(embedded()));
    await ensureDevClient(embedded(), clients);
    const newKid = readDevClientFile(devClientPath(embedded()))!.kid;
    expect(newKid).not.toBe(kid);
    expect((await clients.findById(DEV_CLIENT_ID))!.jwks.keys.map((k) => k.kid)).toEqual([newKid]);
  });

  it('leaves a client the admin disabled disabled', async () => {
    await ensureDevClient(embedded(), clients);
    await clients.setEnabled(DEV_CLIENT_ID, false);
    rmSync(devClientPath(embedded()));
    await ensureDevClient(embedded(), clients);
    expect((await clients.findById(DEV_CLIENT_ID))!.enabled).toBe(false);
  });

  it('does nothing on a real Postgres server or an in-memory database', async () => {
    expect(
      await ensureDevClient({ dataDir, database: { kind: 'postgres', url: 'postgres://x' } }, clients),
    ).toBe(false);
    expect(
      await ensureDevClient({ dataDir, database: { kind: 'pglite', dataDir: undefined } }, clients),
    ).toBe(false);
    expect(readDevClientFile(devClientPath({ dataDir }))).toBeUndefined();
    expect(await clients.list()).toEqual([]);
  });
});
