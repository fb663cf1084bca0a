/**
 * Synthea leak check (issue #3; manual, not CI: CI has no ../shared): loads every Synthea transaction
 * Bundle into a fresh database on a real Postgres server (TEST_DATABASE_URL), dumps it with pg_dump, and
 * searches the rows for every value the search index was built from (each plaintext token of every
 * resource, at least 6 characters long so that chance matches in ciphertext stay out), plus every
 * patient's names, identifiers, birth date, phone numbers and address lines.
 *
 *   TEST_DATABASE_URL=postgres://… npx tsx --conditions=source scripts/synthea-leak-check.ts [dir]
 *
 * Prints how many distinct values were searched for and how many were found (the values found, masked).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalKeyringProvider } from '#crypto';
import { migrations } from '../apps/fhir-gateway/src/database/migrations/index.js';
import { migrate } from '../apps/fhir-gateway/src/database/migrator.js';
import { PostgresDatabase } from '../apps/fhir-gateway/src/database/postgres.database.js';
import { createFhirEngine } from '../apps/fhir-gateway/src/fhir/fhir-engine.factory.js';
import { extractTokens } from '../apps/fhir-gateway/src/search/search-tokens.js';
import type { Patient } from '@medplum/fhirtypes';
import type { AnyResource } from '../apps/fhir-gateway/src/fhir/resource-json.js';
import { createStorage } from '../apps/fhir-gateway/src/store/storage.factory.js';
import { createFreshDatabase } from '../test/support/database.js';
import { testContext } from '../test/support/test-context.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = resolve(process.argv[2] ?? join(repo, '..', 'shared', 'fixtures', 'synthea'));
const server = process.env.TEST_DATABASE_URL;
if (!server || !existsSync(dir)) {
  console.error('usage: TEST_DATABASE_URL=postgres://… synthea-leak-check.ts [synthea dir]');
  process.exit(2);
}

const fresh = await createFreshDatabase(server);
const db = new PostgresDatabase(fresh.url);
const keyDir = mkdtempSync(join(tmpdir(), 'synthea-leak-'));
try {
  await migrate(db, migrations);
  const storage = createStorage(db, LocalKeyringProvider.openOrCreate(join(keyDir, 'keyring.json')));
  const engine = createFhirEngine(storage.store, 'http://localhost');
  const values = new Set<string>();
  const add = (v: unknown) => {
    if (typeof v === 'string' && v.length >= 6) values.add(v);
  };
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    const bundle = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
      entry: { resource: AnyResource }[];
    };
    const res = await engine.handle(testContext(), {
      method: 'POST',
      path: '',
      query: {},
      headers: {},
      body: bundle,
    });
    if (res.status !== 200) throw new Error(`${file}: ${res.status}`);
    for (const { resource } of bundle.entry) {
      // The token's value after its kind prefix ("p|", "s|system|", …): what the index was built from.
      for (const t of extractTokens(resource)) add(t.value.slice(t.value.lastIndexOf('|') + 1));
      if (resource.resourceType === 'Patient') {
        const p = resource as Patient;
        for (const n of p.name ?? []) [n.family, ...(n.given ?? [])].forEach(add);
        for (const i of p.identifier ?? []) add(i.value);
        for (const t of p.telecom ?? []) add(t.value);
        for (const a of p.address ?? []) [...(a.line ?? []), a.city].forEach(add);
        add(p.birthDate);
      }
    }
  }
  const bin =
    ['/usr/lib/postgresql/15/bin/pg_dump', '/usr/lib/postgresql/16/bin/pg_dump'].find(existsSync) ??
    'pg_dump';
  // LEAK_CONTROL=1 plants one of the searched values in a table of its own: the check must then find it.
  const control = process.env.LEAK_CONTROL === '1' ? [...values][0] : undefined;
  if (control !== undefined) await db.query('CREATE TABLE leak_control AS SELECT $1::text AS v', [control]);
  // Rows only (the schema's own words are not data), and a value counts where it stands on its own: a
  // 6-digit code can occur by chance inside a 19-digit token or a hex ciphertext, which is not a leak.
  const dump = execFileSync(bin, ['--no-owner', '--data-only', fresh.url], {
    encoding: 'utf8',
    maxBuffer: 1024 * 1024 * 1024,
  });
  const escape = (v: string) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const found = [...values].filter((v) =>
    new RegExp(`(?<![A-Za-z0-9])${escape(v)}(?![A-Za-z0-9])`).test(dump),
  );
  console.log(
    `synthea leak check: dump ${(dump.length / 1e6).toFixed(1)} MB, ${values.size} distinct indexed or PHI values searched, ${found.length} found`,
  );
  for (const v of found) console.log(`  found: ${v.slice(0, 2)}… (${v.length} characters)`);
  if (control !== undefined)
    console.log(`  control: planted value ${found.includes(control) ? 'found' : 'MISSED'}`);
  process.exitCode = found.length === (control !== undefined ? 1 : 0) ? 0 : 1;
} finally {
  await db.close();
  await fresh.drop();
  rmSync(keyDir, { recursive: true, force: true });
}
