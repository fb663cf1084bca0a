/**
 * The search suite of `npm run bench` (issue #3): searches over BENCH_SEARCH_SCALE resources (default
 * 100,000: patients with observations, conditions and encounters), full gateway against a plaintext index
 * of the same data in the same Postgres, in the same run. Each scenario is measured twice with alternating
 * rounds: latency with one connection (p50/p99 of a lone client) and throughput with BENCH_CONNECTIONS.
 * Paging is measured as whole walks through 1,000 results following next links.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { measure, type Measurement, type RunOptions, type Target } from './harness.js';
import { LOINC, OBSERVATION_CODES } from './clinical-generator.js';

export interface IndexSizes {
  resources: number;
  fullTokenLayout: string;
  fullSearchTokenBytesPerResource: number;
  fullReferenceCompartmentBytesPerResource: number;
  fullTotalBytesPerResource: number;
  baselineBytesPerResource: number;
  fullSearchTokens: number;
  baselineIndexRows: number;
}

export interface SearchServerInfo {
  fhirUrl: string;
  baselineUrl: string;
  /** Server processes on each side (BENCH_WORKERS): the gateway and the baseline always get the same. */
  workers: number;
  database: string;
  load: { seconds: number; resources: number; rate: number; keptFromEarlierRun: boolean };
  patients: number;
  samples: { id: string; mrn: string; family: string }[];
  indexSizes: IndexSizes;
}

/** One search: the query (path below the FHIR base / the baseline's search root) per request. */
interface SearchScenario {
  name: string;
  /** e.g. "Patient?identifier=..."; called per request, so values vary. */
  query: () => string;
}

export interface SearchRow {
  scenario: string;
  example: string;
  status: 'ok' | 'not supported yet' | 'error';
  note?: string;
  check?: { full: string; baseline: string; same: boolean };
  latency?: { full?: Measurement; baseline: Measurement };
  throughput?: { full?: Measurement; baseline: Measurement; ratio?: number };
}

export interface WalkRow {
  scenario: string;
  full?: WalkStats;
  baseline: WalkStats;
  /** baseline walk time / full walk time (= full throughput / baseline throughput). */
  ratio?: number;
  check?: { full: string; baseline: string; same: boolean };
}

export interface WalkStats {
  walks: number;
  walkP50: number;
  walkP99: number;
  pageP50: number;
  pageP99: number;
  pagesPerSecond: number;
  errors: number;
}

export interface SearchSuiteResult {
  scale: number;
  workers: number;
  database: string;
  load: SearchServerInfo['load'];
  patients: number;
  indexSizes: IndexSizes;
  rows: SearchRow[];
  walks: WalkRow[];
  options: { seconds: number; rounds: number; connections: number };
}

export async function startSearchServer(
  env: Record<string, string>,
  onSpawn?: (child: ChildProcess) => void,
): Promise<{ child: ChildProcess; info: SearchServerInfo }> {
  const child = spawn(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', 'test/bench/search-server.ts'],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  onSpawn?.(child);
  const lines = createInterface({ input: child.stdout });
  const info = await new Promise<SearchServerInfo>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`search bench server exited with ${code}`)));
    lines.on('line', (line) => {
      if (line.startsWith('{"ready"')) resolve(JSON.parse(line) as SearchServerInfo);
    });
  });
  return { child, info };
}

function scenarios(info: SearchServerInfo): SearchScenario[] {
  let i = 0;
  const sample = () => info.samples[i++ % info.samples.length]!;
  const code = () => OBSERVATION_CODES[i++ % OBSERVATION_CODES.length]![0];
  const enc = encodeURIComponent;
  return [
    { name: 'identifier lookup', query: () => `Patient?identifier=${enc(sample().mrn)}` },
    { name: 'family-name prefix', query: () => 'Patient?family=smi' },
    {
      name: 'code and date',
      query: () => `Observation?code=${enc(`${LOINC}|${code()}`)}&date=ge2024-07-01`,
    },
    {
      name: "a patient's observations",
      query: () => `Observation?subject=${enc(`Patient/${sample().id}`)}`,
    },
    {
      name: 'chained subject:Patient.identifier',
      query: () => `Observation?subject:Patient.identifier=${enc(sample().mrn)}`,
    },
    {
      name: 'chained subject.family',
      query: () => `Observation?subject.family=smi&date=ge2024-07-01`,
    },
    {
      // The chain as the only condition: its outer candidates come through resource_reference.
      name: 'chained subject.family alone',
      query: () => `Observation?subject.family=smi`,
    },
    {
      // With a condition nearly every Observation meets: the long reference list must not be tested row by
      // row (it took 1.8 s before the list was read in chunks).
      name: 'chained subject.family + status',
      query: () => `Observation?subject.family=smi&status=final`,
    },
    {
      name: '_revinclude Observation:subject',
      query: () => `Patient?identifier=${enc(sample().mrn)}&_revinclude=Observation:subject`,
    },
  ];
}

interface Endpoints {
  full: string;
  baseline: string;
  token: () => Promise<string>;
}

async function getJson(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Bundle }> {
  const res = await fetch(url, { headers });
  const text = await res.text();
  let body: Bundle = {};
  try {
    body = JSON.parse(text) as Bundle;
  } catch {
    // not JSON: leave empty
  }
  return { status: res.status, body };
}

interface Bundle {
  total?: number;
  link?: { relation: string; url: string }[];
  entry?: { resource?: { resourceType: string; id: string }; search?: { mode?: string } }[];
  issue?: { diagnostics?: string }[];
}

function summary(b: Bundle): string {
  const ids = (mode: string) =>
    (b.entry ?? [])
      .filter((e) => (e.search?.mode ?? 'match') === mode)
      .map((e) => `${e.resource?.resourceType}/${e.resource?.id}`);
  const match = ids('match');
  const inc = ids('include');
  return `total=${b.total ?? '-'} page=${match.length} include=${inc.length} next=${b.link?.some((l) => l.relation === 'next') ? 'yes' : 'no'} first=${match[0] ?? '-'}`;
}

/** The same ids in the page (in order), the same included ids (as sets), the same total. */
function sameResult(a: Bundle, b: Bundle): boolean {
  const split = (x: Bundle) => {
    const m: string[] = [];
    const inc: string[] = [];
    for (const e of x.entry ?? [])
      ((e.search?.mode ?? 'match') === 'match' ? m : inc).push(
        `${e.resource?.resourceType}/${e.resource?.id}`,
      );
    return { m: m.join(','), inc: inc.sort().join(','), next: !!x.link?.some((l) => l.relation === 'next') };
  };
  const x = split(a);
  const y = split(b);
  return a.total === b.total && x.m === y.m && x.inc === y.inc && x.next === y.next;
}

/** One request of the scenario against both, with _total=accurate: both must agree. */
async function check(
  ep: Endpoints,
  query: string,
): Promise<{ status: number; note?: string; full: string; baseline: string; same: boolean }> {
  const q = `${query}&_total=accurate`;
  const auth = { authorization: `Bearer ${await ep.token()}` };
  const f = await getJson(`${ep.full}/${q}`, auth);
  const b = await getJson(`${ep.baseline}/${q}`);
  if (f.status !== 200) {
    const note = f.body.issue?.map((i) => i.diagnostics).join('; ');
    return { status: f.status, note, full: `HTTP ${f.status}`, baseline: summary(b.body), same: false };
  }
  return { status: 200, full: summary(f.body), baseline: summary(b.body), same: sameResult(f.body, b.body) };
}

function targets(ep: Endpoints, token: string, s: SearchScenario): { full: Target; baseline: Target } {
  const full = new URL(ep.full);
  const base = new URL(ep.baseline);
  return {
    full: {
      url: ep.full,
      headers: { authorization: `Bearer ${token}` },
      next: () => ({ path: `${full.pathname}/${s.query()}` }),
    },
    baseline: { url: ep.baseline, next: () => ({ path: `${base.pathname}/${s.query()}` }) },
  };
}

function median(ms: Measurement[]): Measurement {
  const med = (pick: (m: Measurement) => number) => {
    const xs = ms.map(pick).sort((a, b) => a - b);
    return xs[Math.floor(xs.length / 2)]!;
  };
  return {
    ...ms[0]!,
    rps: med((m) => m.rps),
    p50: med((m) => m.p50),
    p99: med((m) => m.p99),
    requests: ms.reduce((n, m) => n + m.requests, 0),
    errors: ms.reduce((n, m) => n + m.errors, 0),
    non2xx: ms.reduce((n, m) => n + m.non2xx, 0),
  };
}

/** Alternating rounds (baseline, full) with fresh tokens; medians. Without full, the baseline only. */
async function alternate(
  ep: Endpoints,
  s: SearchScenario,
  withFull: boolean,
  opts: RunOptions & { rounds: number },
): Promise<{ full?: Measurement; baseline: Measurement }> {
  const fulls: Measurement[] = [];
  const bases: Measurement[] = [];
  for (let r = 0; r < opts.rounds; r++) {
    const t = targets(ep, await ep.token(), s);
    bases.push(await measure('baseline', t.baseline, opts));
    if (withFull) fulls.push(await measure('full path', t.full, opts));
  }
  return { full: fulls.length ? median(fulls) : undefined, baseline: median(bases) };
}

/** Follows next links from `first` until `results` matches were seen (or no next link); times pages and walk. */
async function walk(
  first: string,
  headers: Record<string, string>,
  results: number,
): Promise<{ ms: number; pages: number[]; error: boolean; seen: string[] }> {
  const pages: number[] = [];
  const seen: string[] = [];
  const t0 = performance.now();
  let url: string | undefined = first;
  while (url && seen.length < results) {
    const p0 = performance.now();
    const res = await fetch(url, { headers });
    const body = (await res.json()) as Bundle;
    pages.push(performance.now() - p0);
    if (res.status !== 200) return { ms: performance.now() - t0, pages, error: true, seen };
    for (const e of body.entry ?? []) if ((e.search?.mode ?? 'match') === 'match') seen.push(e.resource!.id);
    url = body.link?.find((l) => l.relation === 'next')?.url;
  }
  // A smaller data set may run out of matches before `results`: the walk ends at the last page.
  return { ms: performance.now() - t0, pages, error: false, seen };
}

function pct(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))]! * 10) / 10 : 0;
}

async function walkFor(
  seconds: number,
  first: () => string,
  headers: () => Promise<Record<string, string>>,
  results: number,
): Promise<{ walks: number[]; pages: number[]; errors: number; elapsed: number }> {
  const walks: number[] = [];
  const pages: number[] = [];
  let errors = 0;
  const h = await headers();
  const start = performance.now();
  while (performance.now() - start < seconds * 1000 && walks.length < 1000) {
    const w = await walk(first(), h, results);
    if (w.error) errors++;
    walks.push(w.ms);
    pages.push(...w.pages);
  }
  return { walks, pages, errors, elapsed: (performance.now() - start) / 1000 };
}

function walkStats(rounds: Awaited<ReturnType<typeof walkFor>>[]): WalkStats {
  const walks = rounds.flatMap((r) => r.walks);
  const pages = rounds.flatMap((r) => r.pages);
  const elapsed = rounds.reduce((n, r) => n + r.elapsed, 0);
  return {
    walks: walks.length,
    walkP50: pct(walks, 0.5),
    walkP99: pct(walks, 0.99),
    pageP50: pct(pages, 0.5),
    pageP99: pct(pages, 0.99),
    pagesPerSecond: pages.length / elapsed,
    errors: rounds.reduce((n, r) => n + r.errors, 0),
  };
}

export async function runSearchSuite(
  info: SearchServerInfo,
  scale: number,
  opts: RunOptions & { rounds: number },
): Promise<SearchSuiteResult> {
  const tokenUrl = `${info.baselineUrl}/bench/token`;
  const ep: Endpoints = {
    full: info.fhirUrl,
    baseline: `${info.baselineUrl}/plain/search`,
    token: async () => ((await (await fetch(tokenUrl)).json()) as { token: string }).token,
  };
  const rows: SearchRow[] = [];
  // BENCH_SEARCH_ONLY=family,chained: only the scenarios whose name contains one of these words (no paging
  // walk unless "paging" is one of them), to iterate on a few.
  const only = process.env.BENCH_SEARCH_ONLY?.split(',').map((w) => w.trim().toLowerCase());
  const picked = (name: string) => !only || only.some((w) => name.toLowerCase().includes(w));
  for (const s of scenarios(info).filter((x) => picked(x.name))) {
    const example = s.query();
    const c = await check(ep, example);
    const row: SearchRow = {
      scenario: s.name,
      example: decodeURIComponent(example),
      status: c.status === 200 ? 'ok' : c.status === 501 ? 'not supported yet' : 'error',
      ...(c.note ? { note: c.note } : {}),
      check: { full: c.full, baseline: c.baseline, same: c.same },
    };
    process.stderr.write(
      `bench: search ${s.name}: ${row.status}${c.same ? '' : ` (full ${c.full} | baseline ${c.baseline})`}\n`,
    );
    const withFull = c.status === 200;
    row.latency = await alternate(ep, s, withFull, { ...opts, connections: 1 });
    const t = await alternate(ep, s, withFull, opts);
    row.throughput = { ...t, ...(t.full ? { ratio: t.full.rps / t.baseline.rps } : {}) };
    rows.push(row);
  }

  // Paging: walk 1,000 matches, _count=100, following next links.
  const walks: WalkRow[] = [];
  const result = () => ({
    scale,
    workers: info.workers,
    database: info.database,
    load: info.load,
    patients: info.patients,
    indexSizes: info.indexSizes,
    rows,
    walks,
    options: { seconds: opts.durationSeconds, rounds: opts.rounds, connections: opts.connections },
  });
  if (!picked('paging')) return result();
  let i = 0;
  const code = () => encodeURIComponent(`${LOINC}|${OBSERVATION_CODES[i++ % OBSERVATION_CODES.length]![0]}`);
  const query = () => `Observation?code=${code()}&_count=100`;
  const results = 1000;
  const first = query();
  const auth = async () => ({ authorization: `Bearer ${await ep.token()}` });
  const fw = await walk(`${ep.full}/${first}`, await auth(), results);
  const bw = await walk(`${ep.baseline}/${first}`, {}, results);
  const checkWalk = {
    full: fw.error ? 'error' : `${fw.seen.length} ids in ${fw.pages.length} pages`,
    baseline: bw.error ? 'error' : `${bw.seen.length} ids in ${bw.pages.length} pages`,
    same: !fw.error && fw.seen.join() === bw.seen.join(),
  };
  process.stderr.write(`bench: search paging walk: same=${checkWalk.same}\n`);
  const fr: Awaited<ReturnType<typeof walkFor>>[] = [];
  const br: Awaited<ReturnType<typeof walkFor>>[] = [];
  for (let r = 0; r < opts.rounds; r++) {
    br.push(
      await walkFor(
        opts.durationSeconds,
        () => `${ep.baseline}/${query()}`,
        async () => ({}),
        results,
      ),
    );
    if (!fw.error) fr.push(await walkFor(opts.durationSeconds, () => `${ep.full}/${query()}`, auth, results));
  }
  const full = fr.length ? walkStats(fr) : undefined;
  const baseline = walkStats(br);
  walks.push({
    scenario: `walk ${results} results, _count=100 (Observation?code=…; ${checkWalk.full})`,
    ...(full ? { full, ratio: baseline.walkP50 / full.walkP50 } : {}),
    baseline,
    check: checkWalk,
  });
  return result();
}

export function formatSearchReport(r: SearchSuiteResult): string {
  const n = (x: number | undefined, d = 0) => (x === undefined ? '–' : x.toFixed(d));
  const out: string[] = [];
  out.push(
    `### Search at ${r.load.resources} resources (${r.patients} patients), Postgres`,
    '',
    `Server processes: ${r.workers} for the gateway and ${r.workers} for the baseline (BENCH_WORKERS).`,
    '',
    `Load: ${r.load.resources} resources in ${r.load.seconds.toFixed(0)} s (${r.load.rate.toFixed(0)}/s, in-process transaction Bundles through the FHIR engine, plus the plaintext copy)${r.load.keptFromEarlierRun ? ', database kept from an earlier run' : ''}.`,
    '',
    `| scenario | full req/s (${r.options.connections} conn) | full p50 / p99 ms (1 conn) | full p99 ms (${r.options.connections} conn) | baseline req/s | baseline p50 / p99 ms (1 conn) | baseline p99 ms (${r.options.connections} conn) | ratio | errors full/base | same result |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  );
  for (const row of r.rows) {
    const f = row.throughput?.full;
    const fl = row.latency?.full;
    const b = row.throughput?.baseline;
    const bl = row.latency?.baseline;
    const err = (m?: Measurement, m2?: Measurement) =>
      m ? m.errors + m.non2xx + (m2 ? m2.errors + m2.non2xx : 0) : '–';
    const full =
      row.status === 'ok'
        ? `| ${n(f?.rps)} | ${fl?.p50} / ${fl?.p99} | ${f?.p99} `
        : `| ${row.status} | – | – `;
    out.push(
      `| ${row.scenario} ${full}| ${n(b?.rps)} | ${bl?.p50} / ${bl?.p99} | ${b?.p99} | ${n(row.throughput?.ratio, 2)} | ${err(f, fl)}/${err(b, bl)} | ${row.status === 'ok' ? (row.check?.same ? 'yes' : `**NO**: full ${row.check?.full}; baseline ${row.check?.baseline}`) : '–'} |`,
    );
  }
  out.push(
    '',
    '| paging | full walk p50 / p99 ms | full page p50 / p99 ms | full pages/s | baseline walk p50 / p99 ms | baseline page p50 / p99 ms | baseline pages/s | ratio | errors full/base | same ids |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  );
  for (const w of r.walks) {
    const f = w.full;
    const b = w.baseline;
    out.push(
      `| ${w.scenario} | ${f ? `${f.walkP50} / ${f.walkP99}` : 'error'} | ${f ? `${f.pageP50} / ${f.pageP99}` : '–'} | ${n(f?.pagesPerSecond)} | ${b.walkP50} / ${b.walkP99} | ${b.pageP50} / ${b.pageP99} | ${n(b.pagesPerSecond)} | ${n(w.ratio, 2)} | ${f?.errors ?? '–'}/${b.errors} | ${w.check?.same ? 'yes' : `**NO**: full ${w.check?.full}, baseline ${w.check?.baseline}`} |`,
    );
  }
  const s = r.indexSizes;
  out.push(
    '',
    `Index bytes per resource (${s.resources} resources): full ${n(s.fullTotalBytesPerResource)} = blind-index tokens ${n(s.fullSearchTokenBytesPerResource)} (${s.fullSearchTokens} tokens, ${s.fullTokenLayout}) + resource_reference/resource_compartment ${n(s.fullReferenceCompartmentBytesPerResource)}; baseline plaintext index ${n(s.baselineBytesPerResource)} (${s.baselineIndexRows} rows). Tables with their indexes (pg_total_relation_size; for a token column, its bytes plus its GIN index).`,
    '',
    `ratio = full req/s / baseline req/s at ${r.options.connections} connections (paging: baseline walk time / full walk time, one client); medians of ${r.options.rounds} alternating ${r.options.seconds} s rounds; latency columns with one connection. "same result": one request per scenario with _total=accurate against both returned the same total, page ids, included ids and next link.`,
  );
  for (const row of r.rows.filter((x) => x.status !== 'ok'))
    out.push(
      `- ${row.scenario}: ${row.status}${row.note ? ` (${row.note})` : ''}; example \`${row.example}\``,
    );
  return out.join('\n');
}
