/**
 * `npm run bench`: gateway scenarios against their baselines, in the same run, on PGlite and on a real
 * Postgres server. Bounded: each measurement runs for BENCH_SECONDS (default 5) on 127.0.0.1 only.
 *   BENCH_DBS=pglite,postgres   which databases (default both)
 *   BENCH_DATABASE_URL           a Postgres server to use; else a throwaway one is started on 127.0.0.1
 *                                (the gateway suite's is stopped and its data directory removed at the end)
 *   BENCH_ROUNDS                 alternating rounds per scenario, medians reported (default 3)
 *   BENCH_SUITES=gateway,search  which suites (default both; or name them: `npm run bench -- search`)
 *   BENCH_SEARCH_SCALE           resources of the search suite (default 100000; Postgres only)
 *   BENCH_SEARCH_FRESH=1         reload the search data even if a loaded database of this code version exists
 *   BENCH_SEARCH_DB              measure on this loaded bench_search_* database, whatever the code version
 *   BENCH_PG_DIR                 data directory of the search suite's Postgres when BENCH_DATABASE_URL is
 *                                unset (default /tmp/fhirgw-bench-pg-search, kept so the load is reused)
 *   BENCH_SEARCH_ONLY=family,chained  only the search scenarios whose names contain one of these words
 *                                ("paging" for the paging walk); default all
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { generatePatients } from '../support/patient-generator.js';
import { compare, formatTable, type Comparison } from './harness.js';
import { gatewayScenarios } from './scenarios.js';
import { formatSearchReport, runSearchSuite, startSearchServer } from './search-suite.js';

export interface ServerInfo {
  fhirUrl: string;
  baselineUrl: string;
  token: string;
  ids: string[];
  /** "system|value" of each preloaded patient's first identifier. */
  identifiers: string[];
  database: string;
}

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 16);
const dbs = (process.env.BENCH_DBS ?? 'pglite,postgres').split(',');
const suites = (
  process.argv.slice(2).length
    ? process.argv.slice(2)
    : (process.env.BENCH_SUITES ?? 'gateway,search').split(',')
).map((s) => s.trim());
const searchScale = Number(process.env.BENCH_SEARCH_SCALE ?? 100_000);

/**
 * Postgres servers this run started (BENCH_DATABASE_URL unset), by data directory: stopped when their suite
 * ends, also when it fails or the run is interrupted; a throwaway one's data directory (~1 GB after a run)
 * is removed too, a kept one (the search suite's BENCH_PG_DIR) is not.
 */
const startedPostgres = new Map<string, { keep: boolean }>();

function startPostgres(dir: string, port: string, options: { keep: boolean }): string {
  startedPostgres.set(dir, options);
  return execFileSync('bash', ['scripts/postgres-local.sh', 'start', dir, port], { encoding: 'utf8' }).trim();
}

function stopPostgres(dir: string): void {
  const started = startedPostgres.get(dir);
  if (!started) return;
  startedPostgres.delete(dir);
  try {
    execFileSync('bash', ['scripts/postgres-local.sh', 'stop', dir], { stdio: 'inherit' });
  } catch (err) {
    process.stderr.write(`bench: could not stop the Postgres server in ${dir}: ${(err as Error).message}\n`);
  } finally {
    if (!started.keep) rmSync(dir, { recursive: true, force: true });
  }
}

/** Server child processes still running: if the run is interrupted they are told to stop (and clean up). */
const children = new Set<ChildProcess>();

function track(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    for (const child of children) child.kill('SIGTERM');
    for (const dir of [...startedPostgres.keys()]) stopPostgres(dir);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  });

async function startServer(env: Record<string, string>): Promise<{ child: ChildProcess; info: ServerInfo }> {
  const child = spawn(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', 'test/bench/bench-server.ts'],
    {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  track(child);
  const lines = createInterface({ input: child.stdout });
  const info = await new Promise<ServerInfo>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`bench server exited with ${code}`)));
    lines.on('line', (line) => {
      if (line.startsWith('{"ready"')) resolve(JSON.parse(line) as ServerInfo);
    });
  });
  return { child, info };
}

async function main(): Promise<void> {
  for (const s of suites)
    if (s !== 'gateway' && s !== 'search') throw new Error(`unknown bench suite ${s} (gateway, search)`);
  if (suites.includes('gateway')) await gatewaySuite();
  if (suites.includes('search')) await searchSuite();
}

async function gatewaySuite(): Promise<void> {
  const results: Comparison[] = [];
  let pgDir: string | undefined;
  try {
    for (const db of dbs) {
      const env: Record<string, string> = {};
      if (db === 'postgres') {
        let url = process.env.BENCH_DATABASE_URL;
        if (!url) {
          pgDir = `/tmp/fhirgw-bench-pg-${randomUUID().slice(0, 8)}`;
          url = startPostgres(pgDir, '54349', { keep: false });
        }
        env.TEST_DATABASE_URL = url;
      } else {
        env.TEST_DATABASE_URL = '';
      }
      process.stderr.write(`bench: starting ${db} server...\n`);
      const { child, info } = await startServer(env);
      try {
        for (const s of gatewayScenarios(info, generatePatients(200, 5))) {
          process.stderr.write(`bench: ${db} ${s.name}\n`);
          results.push(
            await compare(s.name, db, s.full, s.baseline, { durationSeconds: seconds, connections, rounds }),
          );
        }
      } finally {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
    }
  } finally {
    // Throwaway: stopped and its data directory removed, also when a scenario failed.
    if (pgDir) stopPostgres(pgDir);
  }
  const table = formatTable(results);
  process.stdout.write(
    `\n${table}\n\nratio = full-path req/s / baseline req/s (medians of ${rounds} alternating ${seconds}s rounds, ${connections} connections)\n`,
  );
  mkdirSync('bench-results', { recursive: true });
  writeFileSync(
    `bench-results/gateway-${new Date().toISOString().replace(/[:.]/g, '-')}.json`,
    JSON.stringify(results, null, 2),
  );
}

/** Issue #3: search at scale on a real Postgres, against a plaintext index of the same data. */
async function searchSuite(): Promise<void> {
  let url = process.env.BENCH_DATABASE_URL;
  let pgDir: string | undefined;
  if (!url) {
    // Kept between runs so that the loaded database is reused: stopped at the end, never removed.
    pgDir = process.env.BENCH_PG_DIR ?? '/tmp/fhirgw-bench-pg-search';
    url = startPostgres(pgDir, '54348', { keep: true });
  }
  process.stderr.write(`bench: starting search server (${searchScale} resources)...\n`);
  try {
    const { child, info } = await startSearchServer(
      { BENCH_SEARCH_SERVER: url, BENCH_SEARCH_SCALE: String(searchScale) },
      track,
    );
    try {
      const result = await runSearchSuite(info, searchScale, {
        durationSeconds: seconds,
        connections,
        rounds,
      });
      process.stdout.write(`\n${formatSearchReport(result)}\n`);
      mkdirSync('bench-results', { recursive: true });
      writeFileSync(
        `bench-results/search-${searchScale}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`,
        JSON.stringify(result, null, 2),
      );
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  } finally {
    if (pgDir) stopPostgres(pgDir);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
