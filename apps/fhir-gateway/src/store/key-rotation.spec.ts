import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnvKeyProvider, LocalKeyringProvider } from '#crypto';
import { afterAll, expect, it } from 'vitest';
import { testContext } from '../../../../test/support/test-context.js';
import { createFhirEngine } from '../fhir/fhir-engine.factory.js';
import { PgliteDatabase } from '../database/pglite.database.js';
import { migrate } from '../database/migrator.js';
import { migrations } from '../database/migrations/index.js';
import { createStorage } from './storage.factory.js';
import { rewrapDataKeys } from './key-rotation.js';

const dbs: PgliteDatabase[] = [];
const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dbs.map((d) => d.close()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

it('rotates the KEK, rewraps data keys, and reads with only the new KEK', async () => {
  const db = await PgliteDatabase.open();
  dbs.push(db);
  await migrate(db, migrations);
  const dir = mkdtempSync(join(tmpdir(), 'rot-'));
  dirs.push(dir);
  const path = join(dir, 'keyring.json');
  const keyring = LocalKeyringProvider.openOrCreate(path);
  const engine = createFhirEngine(createStorage(db, keyring).store, 'http://x');
  const ctx = testContext();
  const res = await engine.handle(ctx, {
    method: 'POST',
    path: 'Patient',
    query: {},
    headers: {},
    body: { resourceType: 'Patient', gender: 'other' },
  });
  const id = JSON.parse((res.body as Buffer).toString()).id as string;

  expect(keyring.rotate()).toBe('local-2');
  // The patient's data key and the search-index root key.
  expect(await rewrapDataKeys(db, keyring)).toBe(2);
  const { rows } = await db.query<{ kek_id: string }>('SELECT kek_id FROM data_key');
  expect(rows.map((r) => r.kek_id)).toEqual(['local-2', 'local-2']);

  // A server that no longer has local-1 at all still reads everything.
  const file = JSON.parse(readFileSync(path, 'utf8')) as { keys: { id: string; key: string }[] };
  const onlyNew = new EnvKeyProvider(`local-2:${file.keys.find((k) => k.id === 'local-2')!.key}`);
  const fresh = createFhirEngine(createStorage(db, onlyNew).store, 'http://x');
  const read = await fresh.handle(ctx, { method: 'GET', path: `Patient/${id}`, query: {}, headers: {} });
  expect(JSON.parse((read.body as Buffer).toString()).gender).toBe('other');
});
