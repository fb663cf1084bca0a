/**
 * Child process of `npm run bench`: the full gateway and the bare baseline on the same database, so the
 * load generator in the parent does not share their event loop. Prints one JSON line when ready.
 *   BENCH_DB=pglite|postgres (postgres uses a fresh database on TEST_DATABASE_URL)
 */
import type { Sql } from '../../apps/fhir-gateway/src/database/database.js';
import { PostgresDatabase } from '../../apps/fhir-gateway/src/database/postgres.database.js';
import { generatePatients } from '../support/patient-generator.js';
import { startTestGateway, type RunningGateway } from '../support/gateway.js';
import { startBaseline } from './baseline-server.js';

const PRELOAD = Number(process.env.BENCH_PRELOAD ?? 1000);

let running: RunningGateway | undefined;
// Closing the gateway removes its throwaway data dir, and so does exiting (startTestGateway). Until the
// server is ready a signal closes what is running and exits, instead of dying without exit hooks.
let stop = async (): Promise<void> => {
  await running?.close().catch(() => undefined);
  process.exit(1);
};
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());

async function main(): Promise<void> {
  const gw = await startTestGateway({ LOG_LEVEL: 'silent' });
  running = gw;
  const token = await gw.token('system/*.cruds');
  const db = gw.gateway.storage.db;

  // The baseline reads with its own `pg` pool on a real server, as a plain service would; on PGlite it
  // can only share the gateway's embedded instance.
  let sql: Sql = db;
  let tx = (fn: (s: Sql) => Promise<void>) => db.transaction(fn);
  let baselineDb: PostgresDatabase | undefined;
  if (gw.databaseUrl) {
    // Its own pool, with the same session settings as the gateway's.
    const own = (baselineDb = new PostgresDatabase(gw.databaseUrl));
    sql = own;
    tx = (fn) => own.transaction(fn);
  }
  const baseline = await startBaseline(sql, tx);

  // Preload the same patients into both: through the gateway's full write path, and as plain rows.
  const ids: string[] = [];
  const identifiers: string[] = [];
  const patients = generatePatients(PRELOAD, 99);
  for (const p of patients) {
    const res = await fetch(`${gw.fhirUrl}/Patient`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' },
      body: JSON.stringify(p.patient),
    });
    const body = await res.text();
    const id = (JSON.parse(body) as { id: string }).id;
    ids.push(id);
    await sql.query('INSERT INTO bench_plain (id, content) VALUES ($1, $2)', [id, Buffer.from(body)]);
    const mrn = (p.patient.identifier as { system: string; value: string }[])[0]!;
    const identifier = `${mrn.system}|${mrn.value}`;
    identifiers.push(identifier);
    await sql.query('INSERT INTO bench_plain_identifier (value, id) VALUES ($1, $2)', [identifier, id]);
  }
  // As autovacuum would after a bulk load: the planner needs statistics to drive searches from the index.
  await db.query('ANALYZE');
  process.stdout.write(
    `${JSON.stringify({ ready: true, fhirUrl: gw.fhirUrl, baselineUrl: baseline.url, token, ids, identifiers, database: gw.databaseUrl ? 'postgres' : 'pglite' })}\n`,
  );
  stop = async () => {
    await baseline.app.close();
    await baselineDb?.close();
    await gw.close();
    process.exit(0);
  };
}

main().catch(async (err: unknown) => {
  process.stderr.write(`bench server failed: ${(err as Error).stack ?? String(err)}\n`);
  await running?.close().catch(() => undefined);
  process.exit(1);
});
