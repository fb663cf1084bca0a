/**
 * Child process of the search suite of `npm run bench` (issue #3): the full gateway and the plaintext
 * baseline on one Postgres database holding BENCH_SEARCH_SCALE resources. Prints one JSON line when ready.
 *
 * The database is loaded in-process through the FHIR engine (transaction Bundles, the same validation,
 * encryption and blind indexing as the HTTP write path, without HTTP), and the plaintext copy of every
 * resource with its plaintext index next to it. It is kept between runs under a name keyed by the scale
 * and a hash of the code that decides what is stored (index tokens, schema, generator), with a fixed
 * bench-only key-encryption key, so a second run with the same code skips the load.
 *   BENCH_SEARCH_SERVER    admin URL of the Postgres server (required)
 *   BENCH_SEARCH_SCALE     resources to load (default 100000)
 *   BENCH_SEARCH_FRESH=1   drop and reload even if a loaded database exists
 *   BENCH_SEARCH_DB        use this loaded database as is, whatever the code version (e.g. to re-measure
 *                          after an app change that does not alter what is stored)
 *   BENCH_LOAD_CONCURRENCY transaction Bundles in flight while loading (default 3)
 *   BENCH_LOAD_BUNDLE      entries per transaction Bundle (default 200)
 */
import cluster, { type Worker } from 'node:cluster';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, importJWK, type CryptoKey, type JWK } from 'jose';
import pg from 'pg';
import { createGateway, type Gateway } from '../../apps/fhir-gateway/src/app.factory.js';
import { AuthModule } from '../../apps/fhir-gateway/src/auth/auth.module.js';
import { ClientRepository } from '../../apps/fhir-gateway/src/auth/client.repository.js';
import type { PublicJwks } from '../../apps/fhir-gateway/src/auth/jwks.js';
import { loadConfig } from '../../apps/fhir-gateway/src/config/config.js';
import { PostgresDatabase } from '../../apps/fhir-gateway/src/database/postgres.database.js';
import type { Sql } from '../../apps/fhir-gateway/src/database/database.js';
import { createFhirEngine } from '../../apps/fhir-gateway/src/fhir/fhir-engine.factory.js';
import type { RequestContext } from '../../apps/fhir-gateway/src/fhir/request-context.js';
import { withServerMeta, type AnyResource } from '../../apps/fhir-gateway/src/fhir/resource-json.js';
import { freePort } from '../support/net.js';
import { makeTestClient, requestToken, type TestClient } from '../support/smart-client.js';
import { startBaseline } from './baseline-server.js';
import { registerPlainSearch } from './baseline-search.js';
import { generateRecords, type PatientRecord, type Resource } from './clinical-generator.js';
import { insertPlain, PLAIN_INDEX_TABLES, PLAIN_INDEXES, PLAIN_SCHEMA } from './plain-index.js';

const SCALE = Number(process.env.BENCH_SEARCH_SCALE ?? 100_000);
const CONCURRENCY = Number(process.env.BENCH_LOAD_CONCURRENCY ?? 3);
const BUNDLE = Number(process.env.BENCH_LOAD_BUNDLE ?? 200);
const SAMPLES = 2000;
/** Processes serving each side (gateway and baseline alike), through node:cluster when more than one. */
const WORKERS = Number(process.env.BENCH_WORKERS ?? 1);
/** A bench-only KEK, fixed so that a kept database can be read again by the next run. Not a secret. */
const BENCH_KEK = `bench:${createHash('sha256').update('fhirgw search bench kek').digest('base64')}`;

/** Everything whose change alters what the load writes. */
function codeVersion(): string {
  const h = createHash('sha256').update(String(SCALE));
  const files = [
    'apps/fhir-gateway/src/search/search-tokens.ts',
    'apps/fhir-gateway/src/search/search-params.ts',
    'apps/fhir-gateway/src/search/date-tokens.ts',
    'apps/fhir-gateway/src/search/search-index.ts',
    'apps/fhir-gateway/src/store/resource.repository.ts',
    'apps/fhir-gateway/src/fhir/resource-json.ts',
    'libs/crypto/src/blind-index.ts',
    'test/bench/clinical-generator.ts',
    'test/bench/plain-index.ts',
    'test/support/patient-generator.ts',
    ...readdirSync('apps/fhir-gateway/src/database/migrations').map(
      (f) => `apps/fhir-gateway/src/database/migrations/${f}`,
    ),
  ];
  for (const f of files.sort()) h.update(f).update(readFileSync(f));
  return h.digest('hex').slice(0, 10);
}

function withDb(serverUrl: string, name: string): string {
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

async function prepareDatabase(serverUrl: string): Promise<{ url: string; name: string; loaded: boolean }> {
  const reuse = process.env.BENCH_SEARCH_DB;
  if (reuse) {
    if (!/^bench_search_\w+$/.test(reuse))
      throw new Error('BENCH_SEARCH_DB must name a bench_search_* database');
    return { url: withDb(serverUrl, reuse), name: reuse, loaded: true };
  }
  const name = `bench_search_${SCALE}_${codeVersion()}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    const { rows } = await admin.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_search\\_%'",
    );
    let exists = false;
    for (const { datname } of rows) {
      if (datname === name && process.env.BENCH_SEARCH_FRESH !== '1') exists = true;
      // Earlier code versions of the same scale are stale: drop them (and any half-loaded one).
      else if (datname === name || datname.startsWith(`bench_search_${SCALE}_`))
        await admin.query(`DROP DATABASE ${datname} WITH (FORCE)`);
    }
    if (exists) {
      const c = new pg.Client({ connectionString: withDb(serverUrl, name) });
      await c.connect();
      try {
        const r = await c.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'bench_meta'",
        );
        const done = r.rows[0]!.n > 0 && (await c.query('SELECT 1 FROM bench_meta')).rowCount === 1;
        if (done) return { url: withDb(serverUrl, name), name, loaded: true };
      } finally {
        await c.end();
      }
      await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
    }
    await admin.query(`CREATE DATABASE ${name}`);
    return { url: withDb(serverUrl, name), name, loaded: false };
  } finally {
    await admin.end();
  }
}

const loaderContext: RequestContext = {
  requestId: 'bench-load',
  clientId: 'bench-loader',
  scopes: { assertAllows: () => undefined, allows: () => true },
};

async function load(
  engine: ReturnType<typeof createFhirEngine>,
  plain: Sql,
): Promise<{ seconds: number; resources: number }> {
  await plain.exec(PLAIN_SCHEMA);
  const started = performance.now();
  let done = 0;
  let lastReport = 0;
  const bundles = (function* () {
    let batch: Resource[] = [];
    for (const rec of generateRecords(SCALE)) {
      const all = [rec.patient, ...rec.others];
      if (batch.length > 0 && batch.length + all.length > BUNDLE) {
        yield batch;
        batch = [];
      }
      batch.push(...all);
    }
    if (batch.length > 0) yield batch;
  })();
  const worker = async () => {
    for (let next = bundles.next(); !next.done; next = bundles.next()) {
      const batch = next.value;
      const res = await engine.handle(loaderContext, {
        method: 'POST',
        path: '',
        query: {},
        headers: { prefer: 'return=minimal' },
        body: {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: batch.map((r) => ({
            resource: r,
            request: { method: 'PUT', url: `${r.resourceType}/${r.id}` },
          })),
        },
      });
      if (res.status !== 200) throw new Error(`load transaction failed: ${JSON.stringify(res.body)}`);
      const lastUpdated = new Date().toISOString();
      await insertPlain(
        plain,
        batch.map((r) => ({
          resource: r,
          json: Buffer.from(JSON.stringify(withServerMeta(r as AnyResource, r.id, 1, lastUpdated))),
        })),
      );
      done += batch.length;
      if (done - lastReport >= 10_000) {
        lastReport = done;
        const s = (performance.now() - started) / 1000;
        process.stderr.write(
          `search bench: loaded ${done} in ${s.toFixed(0)} s (${(done / s).toFixed(0)}/s)\n`,
        );
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const seconds = (performance.now() - started) / 1000;
  await plain.exec(PLAIN_INDEXES);
  return { seconds, resources: done };
}

/**
 * Index bytes per resource, gateway and plaintext baseline. The gateway's blind index is either one row per
 * token (search_token, with its indexes) or, since migration 0004, a bigint[] column of resource with a GIN
 * index (column bytes + index); plus resource_reference and resource_compartment with their indexes.
 */
async function indexSizes(sql: Sql): Promise<Record<string, number | string>> {
  const one = async (q: string, params: unknown[] = []) =>
    Number((await sql.query<{ b: string | null }>(q, params)).rows[0]!.b ?? 0);
  const size = (t: string) => one('SELECT pg_total_relation_size($1::regclass)::text AS b', [t]);
  const n = await one('SELECT count(*)::text AS b FROM resource WHERE NOT deleted');
  const layout = (await one("SELECT count(*)::text AS b FROM pg_tables WHERE tablename = 'search_token'"))
    ? 'search_token rows'
    : 'resource.search_tokens bigint[] + GIN';
  let token: number;
  let tokenCount: number;
  if (layout === 'search_token rows') {
    token = await size('search_token');
    tokenCount = await one('SELECT count(*)::text AS b FROM search_token');
  } else {
    token =
      (await one('SELECT sum(pg_column_size(search_tokens))::text AS b FROM resource')) +
      (await one("SELECT pg_relation_size('resource_search_tokens')::text AS b"));
    tokenCount = await one(
      'SELECT sum(coalesce(cardinality(search_tokens), 0))::text AS b FROM resource WHERE NOT deleted',
    );
  }
  const refs = (await size('resource_reference')) + (await size('resource_compartment'));
  let plain = 0;
  for (const t of PLAIN_INDEX_TABLES) plain += await size(t);
  return {
    resources: n,
    fullTokenLayout: layout,
    fullSearchTokenBytesPerResource: token / n,
    fullReferenceCompartmentBytesPerResource: refs / n,
    fullTotalBytesPerResource: (token + refs) / n,
    baselineBytesPerResource: plain / n,
    fullSearchTokens: tokenCount,
    baselineIndexRows: await one(
      `SELECT (${PLAIN_INDEX_TABLES.map((t) => `(SELECT count(*) FROM ${t})`).join(' + ')})::text AS b`,
    ),
  };
}

/** Until the server is ready a signal just exits (running the exit hooks); then it closes everything. */
let stop = async (): Promise<void> => process.exit(1);
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());

async function main(): Promise<void> {
  const server = process.env.BENCH_SEARCH_SERVER;
  if (!server) throw new Error('BENCH_SEARCH_SERVER is required');
  const db = await prepareDatabase(server);
  process.stderr.write(
    `search bench: database ${db.name} (${db.loaded ? 'kept from an earlier run' : 'loading'})\n`,
  );
  const port = await freePort();
  // A throwaway DATA_DIR (the database is on the server, the KEK in FHIRGW_KEK): removed when this process
  // exits, after a clean stop, a failure, or a signal while still loading (see `stop`).
  const dataDir = mkdtempSync(join(tmpdir(), 'gw-bench-search-'));
  process.once('exit', () => rmSync(dataDir, { recursive: true, force: true }));
  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: String(port),
    DATA_DIR: dataDir,
    LOG_LEVEL: 'silent',
    DATABASE_URL: db.url,
    FHIRGW_KEK: BENCH_KEK,
  });
  const gateway = await createGateway(config, () => AuthModule);
  // With workers, they listen on this port and this process only loads.
  if (WORKERS === 1) await gateway.app.listen({ host: '127.0.0.1', port });
  // The baseline's own pool, with the same session settings as the gateway's (PostgresDatabase).
  const plainDb = new PostgresDatabase(db.url);
  const plain: Sql = plainDb;

  let loadInfo: { seconds: number; resources: number; rate: number; keptFromEarlierRun: boolean };
  if (!db.loaded) {
    const engine = createFhirEngine(gateway.storage.store, config.baseUrl);
    const l = await load(engine, plain);
    const a = performance.now();
    await plain.exec('VACUUM (ANALYZE)');
    const analyzeSeconds = (performance.now() - a) / 1000;
    loadInfo = { ...l, rate: l.resources / l.seconds, keptFromEarlierRun: false };
    process.stderr.write(
      `search bench: loaded ${l.resources} resources in ${l.seconds.toFixed(1)} s (${loadInfo.rate.toFixed(0)}/s), VACUUM ANALYZE ${analyzeSeconds.toFixed(1)} s\n`,
    );
    await plain.exec(
      `CREATE TABLE bench_meta (info jsonb NOT NULL);
       INSERT INTO bench_meta VALUES ('${JSON.stringify(loadInfo)}')`,
    );
  } else {
    const { rows } = await plain.query<{ info: typeof loadInfo }>('SELECT info FROM bench_meta');
    loadInfo = { ...rows[0]!.info, keptFromEarlierRun: true };
  }

  // Samples for the scenarios, from the same deterministic generator (every nth patient).
  const records: PatientRecord[] = [];
  let i = 0;
  let patients = 0;
  for (const r of generateRecords(SCALE)) {
    patients++;
    if (i++ % 5 === 0 && records.length < SAMPLES) records.push(r);
  }
  const samples = records.map((r) => ({ id: r.patient.id, mrn: r.mrn, family: r.family }));

  const client = await makeTestClient();
  await new ClientRepository(gateway.storage.db).insert({
    id: client.clientId,
    name: 'search bench client',
    jwks: client.publicJwks as PublicJwks,
    scopes: 'system/*.cruds',
  });
  const ready = {
    ready: true,
    fhirUrl: `${config.baseUrl}/fhir`,
    workers: WORKERS,
    database: db.name,
    databaseUrl: db.url,
    load: loadInfo,
    patients,
    samples,
    indexSizes: await indexSizes(plain),
  };

  if (WORKERS === 1) {
    const serving = await serve(gateway, plainDb, client, config.baseUrl);
    process.stdout.write(`${JSON.stringify({ ...ready, baselineUrl: serving.baselineUrl })}\n`);
    stop = async () => {
      await serving.close();
      process.exit(0);
    };
    return;
  }
  // Both servers as WORKERS processes each, forked one after the other (the first creates the baseline's
  // tables), sharing the two ports through node:cluster. The load is done; this process only supervises.
  await plainDb.close();
  await gateway.close();
  const basePort = await freePort();
  const spec: WorkerSpec = {
    databaseUrl: db.url,
    dataDir,
    fhirPort: port,
    basePort,
    client: { clientId: client.clientId, kid: client.kid, privateJwk: await exportJWK(client.privateKey) },
  };
  const workers: Worker[] = [];
  stop = async () => {
    await Promise.all(
      workers.map(
        (w) => new Promise<void>((resolve) => (w.once('exit', () => resolve()), w.kill('SIGTERM'))),
      ),
    );
    process.exit(0);
  };
  for (let n = 0; n < WORKERS; n++) {
    const w = cluster.fork({ BENCH_WORKER_SPEC: JSON.stringify(spec) });
    workers.push(w);
    await new Promise<void>((resolve, reject) => {
      w.once('message', () => resolve());
      w.once('exit', (code) => reject(new Error(`bench worker exited with code ${code} before serving`)));
    });
  }
  process.stdout.write(`${JSON.stringify({ ...ready, baselineUrl: `http://127.0.0.1:${basePort}` })}\n`);
}

/** What a worker process needs to serve both sides: the loaded database, the ports, the bench client. */
interface WorkerSpec {
  databaseUrl: string;
  dataDir: string;
  fhirPort: number;
  basePort: number;
  client: { clientId: string; kid: string; privateJwk: JWK };
}

/** The baseline (with the plaintext search and the token route) next to a listening gateway. */
async function serve(
  gateway: Gateway,
  plainDb: PostgresDatabase,
  client: TestClient,
  baseUrl: string,
  basePort = 0,
): Promise<{ baselineUrl: string; close: () => Promise<void> }> {
  const plain: Sql = plainDb;
  const token = () => requestToken(baseUrl, client, 'system/*.cruds');
  const tx = (fn: (s: Sql) => Promise<void>) => plainDb.transaction(fn);
  const baseline = await startBaseline(
    plain,
    tx,
    (app) => {
      registerPlainSearch(app, plain);
      // A fresh access token for the load generator (tokens live at most 5 minutes; a run is longer).
      app.get('/bench/token', async () => ({ token: await token() }));
    },
    basePort,
  );
  return {
    baselineUrl: baseline.url,
    close: async () => {
      await baseline.app.close();
      await plainDb.close();
      await gateway.close();
    },
  };
}

async function workerMain(spec: WorkerSpec): Promise<void> {
  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: String(spec.fhirPort),
    DATA_DIR: spec.dataDir,
    LOG_LEVEL: 'silent',
    DATABASE_URL: spec.databaseUrl,
    FHIRGW_KEK: BENCH_KEK,
  });
  const gateway = await createGateway(config, () => AuthModule);
  await gateway.app.listen({ host: '127.0.0.1', port: spec.fhirPort });
  const privateKey = (await importJWK(spec.client.privateJwk, 'ES384')) as CryptoKey;
  const client: TestClient = { ...spec.client, privateKey, publicJwks: { keys: [] } };
  const serving = await serve(
    gateway,
    new PostgresDatabase(spec.databaseUrl),
    client,
    config.baseUrl,
    spec.basePort,
  );
  stop = async () => {
    await serving.close();
    process.exit(0);
  };
  process.send!({ serving: true });
}

const workerSpec = cluster.isWorker ? (JSON.parse(process.env.BENCH_WORKER_SPEC!) as WorkerSpec) : undefined;
(workerSpec ? workerMain(workerSpec) : main()).catch((err: unknown) => {
  process.stderr.write(`search bench server failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
