/**
 * Synthea comparison (issue #3; manual, not CI): loads every Synthea transaction Bundle of a directory
 * through the FHIR engine, runs the searches an EHR runs, built from values found in the data, and
 * compares the ids the server returns (in its documented id order, page by page) with the independent
 * brute-force evaluator of test/differential/independent-evaluator.ts.
 *
 *   npx tsx --conditions=source scripts/synthea-compare.ts [dir] [--show-values]
 *
 * dir defaults to ../shared/fixtures/synthea next to the repository. The database is PGlite in a temporary
 * directory, or a fresh database on TEST_DATABASE_URL (dropped afterwards). The summary prints ids and
 * parameter names only: values that could be PHI (names, identifiers, birth dates, dates of service) are
 * masked unless --show-values is given. Exit code 1 when any query disagrees.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalKeyringProvider } from '#crypto';
import type { Database } from '../apps/fhir-gateway/src/database/database.js';
import { migrations } from '../apps/fhir-gateway/src/database/migrations/index.js';
import { migrate } from '../apps/fhir-gateway/src/database/migrator.js';
import { PgliteDatabase } from '../apps/fhir-gateway/src/database/pglite.database.js';
import { PostgresDatabase } from '../apps/fhir-gateway/src/database/postgres.database.js';
import { createFhirEngine } from '../apps/fhir-gateway/src/fhir/fhir-engine.factory.js';
import type { FhirEngine } from '../apps/fhir-gateway/src/fhir/fhir-engine.js';
import { FhirError } from '../apps/fhir-gateway/src/fhir/outcomes.js';
import { createStorage } from '../apps/fhir-gateway/src/store/storage.factory.js';
import { bruteForce, includedKeys, localReference } from '../test/differential/independent-evaluator.js';
import { createFreshDatabase } from '../test/support/database.js';
import { testContext } from '../test/support/test-context.js';

type Res = { resourceType: string; id: string } & Record<string, unknown>;
interface Coding {
  system?: string;
  code?: string;
}
interface Concept {
  coding?: Coding[];
}
interface Query {
  group: string;
  type: string;
  params: [string, string][];
}
interface Entry {
  resource?: Res;
  search?: { mode?: string };
  response?: { location?: string };
}
interface SearchBundle {
  entry?: Entry[];
  link?: { relation: string; url: string }[];
}

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const showValues = args.includes('--show-values');
const dir = resolve(args.find((a) => !a.startsWith('--')) ?? join(repo, '../shared/fixtures/synthea'));
const ctx = testContext();
const CONTROL = new Set(['_count', '_include', '_revinclude']);
/** Parameters whose values are shown in the summary without --show-values (codes, statuses, server ids). */
const SHOWN = new Set([
  '_id',
  '_count',
  '_include',
  '_revinclude',
  'gender',
  'code',
  'category',
  'status',
  'clinical-status',
  'patient',
  'subject',
]);

const progress = (msg: string) => process.stderr.write(`synthea-compare: ${msg}\n`);

async function openDatabase(): Promise<{ db: Database; label: string; close: () => Promise<void> }> {
  const server = process.env.TEST_DATABASE_URL;
  if (server) {
    const fresh = await createFreshDatabase(server);
    const db = new PostgresDatabase(fresh.url);
    await migrate(db, migrations);
    return {
      db,
      label: `Postgres (fresh database ${fresh.name})`,
      close: async () => {
        await db.close();
        await fresh.drop();
      },
    };
  }
  const dataDir = mkdtempSync(join(tmpdir(), 'synthea-compare-'));
  let db: PgliteDatabase | undefined;
  try {
    db = await PgliteDatabase.open(join(dataDir, 'pglite'));
    await migrate(db, migrations);
  } catch (e) {
    await db?.close().catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
  const opened = db;
  return {
    db: opened,
    label: `PGlite (${dataDir})`,
    close: async () => {
      try {
        await opened.close();
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
}

const asBody = (b: unknown): unknown => (b instanceof Buffer ? JSON.parse(b.toString('utf8')) : b);

/** Loads one transaction Bundle; returns the stored resources (server ids, rewritten references). */
async function load(engine: FhirEngine, file: string): Promise<Res[]> {
  const bundle = JSON.parse(readFileSync(file, 'utf8')) as unknown;
  const res = await engine.handle(ctx, { method: 'POST', path: '', query: {}, headers: {}, body: bundle });
  const out: Res[] = [];
  for (const e of (asBody(res.body) as SearchBundle).entry ?? []) {
    if (e.resource) out.push(e.resource);
    else if (e.response?.location) {
      const [type, id] = localReference(e.response.location) ?? [];
      if (!type || !id) throw new Error('transaction response entry without a resource or a location');
      const read = await engine.handle(ctx, { method: 'GET', path: `${type}/${id}`, query: {}, headers: {} });
      out.push(asBody(read.body) as Res);
    }
  }
  return out;
}

interface Walk {
  /** Match ids in the order of the pages. */
  ids: string[];
  /** Per page: the match resources and the sorted "Type/id" keys of the included ones. */
  pages: { matches: Res[]; included: string[] }[];
}

async function walk(engine: FhirEngine, q: Query): Promise<Walk> {
  let query: Record<string, string[]> = {};
  for (const [k, v] of q.params) (query[k] ??= []).push(v);
  const out: Walk = { ids: [], pages: [] };
  for (let i = 0; i < 2000; i++) {
    const res = await engine.handle(ctx, { method: 'GET', path: q.type, query, headers: {} });
    const bundle = res.body as SearchBundle;
    const entries = bundle.entry ?? [];
    const matches = entries.filter((e) => e.search?.mode === 'match').flatMap((e) => e.resource ?? []);
    const included = entries
      .filter((e) => e.search?.mode === 'include')
      .flatMap((e) => (e.resource ? [`${e.resource.resourceType}/${e.resource.id}`] : []))
      .sort();
    out.ids.push(...matches.map((r) => r.id));
    out.pages.push({ matches, included });
    const next = bundle.link?.find((l) => l.relation === 'next');
    if (!next) return out;
    query = {};
    for (const [k, v] of new URL(next.url).searchParams) (query[k] ??= []).push(v);
  }
  throw new Error('more than 2000 pages');
}

// ---------------------------------------------------------------- queries from the data

const codings = (c: unknown): Coding[] => (c as Concept | undefined)?.coding ?? [];
const token = (c: Coding) => `${c.system}|${c.code}`;
const ref = (r: Res) => `${r.resourceType}/${r.id}`;

function choose<T>(xs: readonly T[], n: number, rnd: () => number): T[] {
  const copy = [...xs];
  const out: T[] = [];
  while (out.length < n && copy.length > 0) out.push(copy.splice(Math.floor(rnd() * copy.length), 1)[0]!);
  return out;
}

/** "1999-03-04T10:20:30-05:00" at year, month, day and full precision. */
function precisions(dt: string): string[] {
  return [dt.slice(0, 4), dt.slice(0, 7), dt.slice(0, 10), dt].filter((v, i, a) => a.indexOf(v) === i);
}

function buildQueries(all: Res[]): Query[] {
  let seed = 20261126;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const of = (type: string) => all.filter((r) => r.resourceType === type);
  const forPatient = (type: string, p: Res, field = 'subject') =>
    of(type).filter((r) => (r[field] as { reference?: string } | undefined)?.reference === ref(p));
  const qs: Query[] = [];
  const add = (group: string, type: string, ...params: [string, string][]) =>
    qs.push({ group, type, params });
  const PREFIXES = ['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb'];

  for (const p of of('Patient')) {
    const names = (p.name as { family?: string; given?: string[] }[] | undefined) ?? [];
    const family = names[0]?.family ?? '';
    const given = names[0]?.given?.[0] ?? '';
    const birthDate = typeof p.birthDate === 'string' ? p.birthDate : '';
    for (const id of (p.identifier as { system?: string; value?: string }[] | undefined) ?? []) {
      if (id.system && id.value)
        add('Patient identifier', 'Patient', ['identifier', `${id.system}|${id.value}`]);
      if (id.value) add('Patient identifier', 'Patient', ['identifier', id.value]);
    }
    add('Patient name', 'Patient', ['name', given]);
    add('Patient name', 'Patient', ['name', family.toLowerCase()]);
    add('Patient name', 'Patient', ['given', given.slice(0, 3)]);
    add('Patient name', 'Patient', ['family:exact', family]);
    add('Patient family prefix', 'Patient', ['family', family.slice(0, 1)]);
    add('Patient family prefix', 'Patient', ['family', family.slice(0, 3)]);
    add('Patient family prefix', 'Patient', ['family', family.slice(0, 5).toUpperCase()]);
    for (const d of precisions(birthDate))
      add('Patient birthdate', 'Patient', ['birthdate', `${choose(PREFIXES, 1, rnd)[0]}${d}`]);
    add('Patient birthdate', 'Patient', ['birthdate', birthDate]);
    add('Patient gender', 'Patient', ['gender', String(p.gender)]);
    add(
      'Patient gender',
      'Patient',
      ['gender', String(p.gender)],
      ['birthdate', `ge${birthDate.slice(0, 4)}`],
    );
    add('Patient gender', 'Patient', ['family', family.slice(0, 2)], ['gender', String(p.gender)]);
    add('Patient name', 'Patient', ['name', given.slice(0, 2)], ['name', family.slice(0, 2)]);

    // Observations: patient + code, patient + category.
    const obs = forPatient('Observation', p);
    const codes = [...new Set(obs.flatMap((o) => codings(o.code).map(token)))];
    if (codes.length > 1)
      add(
        'Observation patient+code',
        'Observation',
        ['patient', p.id],
        ['code', choose(codes, 3, rnd).join(',')],
      );
    for (const c of choose(codes, 4, rnd)) {
      add('Observation patient+code', 'Observation', ['patient', p.id], ['code', c]);
      add('Observation patient+code', 'Observation', ['subject', ref(p)], ['code', c.split('|')[1]!]);
    }
    const categories = [
      ...new Set(
        obs
          .flatMap((o) => (o.category as unknown[] | undefined) ?? [])
          .flatMap(codings)
          .map(token),
      ),
    ];
    for (const c of categories) {
      add('Observation patient+category', 'Observation', ['patient', ref(p)], ['category', c]);
      add('Observation patient+category', 'Observation', ['patient', p.id], ['category', c.split('|')[1]!]);
    }
    add('_count paging', 'Observation', ['patient', p.id], ['_count', String(1 + Math.floor(rnd() * 40))]);
    if (categories[0])
      add('_count paging', 'Observation', ['patient', p.id], ['category', categories[0]], ['_count', '3']);

    // Chained searches as an EHR writes them (R4 search.html#chaining): on the patient's identifier with a
    // code, on a name prefix alone (many targets: the link-table walk, paged) and with a date or a status.
    const mrn = ((p.identifier as { system?: string; value?: string }[] | undefined) ?? []).find(
      (i) => i.system && i.value,
    );
    if (mrn && codes[0])
      add(
        'chained',
        'Observation',
        ['subject:Patient.identifier', `${mrn.system}|${mrn.value}`],
        ['code', codes[0]],
      );
    add('chained', 'Encounter', ['subject:Patient.family', family.slice(0, 3)]);
    add('chained', 'Observation', ['subject.family', family.slice(0, 1)], ['_count', '7']);
    add(
      'chained',
      'Observation',
      ['patient.name', given.slice(0, 2)],
      ['date', `ge${birthDate.slice(0, 4)}`],
    );
    add('chained', 'Condition', ['patient.family', family.slice(0, 2)], ['clinical-status', 'active']);

    // Conditions by clinical status, encounters by date, medication requests by status.
    for (const s of [
      'active',
      'resolved',
      'http://terminology.hl7.org/CodeSystem/condition-clinical|active',
      'active,resolved',
    ])
      add('Condition patient+clinical-status', 'Condition', ['patient', p.id], ['clinical-status', s]);
    const encounters = forPatient('Encounter', p);
    for (const e of choose(encounters, 3, rnd)) {
      const start = (e.period as { start?: string } | undefined)?.start ?? '';
      for (const d of choose(precisions(start), 2, rnd))
        add(
          'Encounter patient+date',
          'Encounter',
          ['patient', p.id],
          ['date', `${choose(PREFIXES, 1, rnd)[0]}${d}`],
        );
      add(
        'Encounter patient+date',
        'Encounter',
        ['patient', p.id],
        ['date', `ge${start.slice(0, 4)}`],
        ['date', `lt${Number(start.slice(0, 4)) + 3}`],
      );
    }
    // Codes of results and diagnoses are indexed under per-patient keys: searched with the patient.
    for (const [type, field] of [
      ['Condition', 'code'],
      ['Procedure', 'code'],
      ['MedicationRequest', 'medicationCodeableConcept'],
      ['AllergyIntolerance', 'code'],
    ] as const) {
      const own = forPatient(type, p, type === 'AllergyIntolerance' ? 'patient' : 'subject');
      const pcodes = [...new Set(own.flatMap((r) => codings(r[field]).map(token)))];
      for (const c of choose(pcodes, 3, rnd))
        add('patient-scoped code', type, ['patient', p.id], ['code', rnd() < 0.5 ? c : c.split('|')[1]!]);
      if (pcodes.length > 1)
        add('patient-scoped code', type, ['patient', ref(p)], ['code', choose(pcodes, 2, rnd).join(',')]);
    }
    const statuses = [...new Set(forPatient('MedicationRequest', p).map((m) => String(m.status)))];
    for (const s of [...statuses, 'active', 'stopped,completed'])
      add('MedicationRequest patient+status', 'MedicationRequest', ['patient', p.id], ['status', s]);

    // _include and _revinclude.
    add(
      '_include',
      'Encounter',
      ['patient', p.id],
      ['_include', 'Encounter:practitioner'],
      ['_include', 'Encounter:service-provider'],
    );
    add(
      '_include',
      'Encounter',
      ['patient', p.id],
      ['_include', 'Encounter:participant:Practitioner'],
      ['_count', '4'],
    );
    add(
      '_include',
      'Observation',
      ['patient', p.id],
      ['category', 'vital-signs'],
      ['_include', 'Observation:patient'],
      ['_include', 'Observation:encounter'],
      ['_count', '25'],
    );
    add(
      '_include',
      'MedicationRequest',
      ['patient', p.id],
      ['_include', 'MedicationRequest:requester'],
      ['_include', 'MedicationRequest:encounter'],
    );
    add(
      '_include',
      'Patient',
      ['_id', p.id],
      ['_include', 'Patient:general-practitioner'],
      ['_include', 'Patient:organization'],
    );
    add(
      '_revinclude',
      'Patient',
      ['_id', p.id],
      ['_revinclude', 'Condition:patient'],
      ['_revinclude', 'Encounter:subject'],
    );
    add(
      '_revinclude',
      'Patient',
      ['_id', p.id],
      ['_revinclude', 'MedicationRequest:subject:Patient'],
      ['_revinclude', 'AllergyIntolerance:patient'],
    );
    add(
      '_revinclude',
      'Encounter',
      ['patient', p.id],
      ['_revinclude', 'Observation:encounter'],
      ['_revinclude', 'Condition:encounter'],
      ['_count', '5'],
    );
  }

  // Observations by code and date ranges across patients, several prefixes and precisions.
  const obs = of('Observation');
  const byCode = new Map<string, Res[]>();
  for (const o of obs)
    for (const c of codings(o.code)) byCode.set(token(c), [...(byCode.get(token(c)) ?? []), o]);
  const common = [...byCode].sort((a, b) => b[1].length - a[1].length).slice(0, 8);
  for (const [code, list] of common) {
    for (const o of choose(list, 3, rnd)) {
      const when = typeof o.effectiveDateTime === 'string' ? o.effectiveDateTime : '';
      if (!when) continue;
      for (const d of precisions(when))
        for (const prefix of choose(PREFIXES, 3, rnd))
          add('Observation code+date', 'Observation', ['code', code], ['date', `${prefix}${d}`]);
      const y = Number(when.slice(0, 4));
      add(
        'Observation code+date',
        'Observation',
        ['code', code],
        ['date', `ge${y - 1}`],
        ['date', `lt${y + 1}-06`],
      );
    }
  }
  // Practitioners and Organizations as EHRs look them up (_revinclude of their encounters).
  for (const dr of choose(of('Practitioner'), 4, rnd))
    add(
      '_revinclude',
      'Practitioner',
      ['_id', dr.id],
      ['_revinclude', 'Encounter:practitioner'],
      ['_count', '50'],
    );
  return qs;
}

// ---------------------------------------------------------------- comparison

function describeQuery(q: Query, mask: Map<string, string>): string {
  const shown = q.params.map(([k, v]) => {
    if (showValues || SHOWN.has(k.split(':')[0]!) || CONTROL.has(k)) return `${k}=${v}`;
    // Prefix and shape of a date, a stable number for anything else.
    const date = /^(eq|ne|gt|lt|ge|le|sa|eb)?(\d{4}(-\d{2}(-\d{2}(T.*)?)?)?)$/.exec(v);
    if (date)
      return `${k}=${date[1] ?? ''}<${['YYYY', 'YYYY-MM', 'YYYY-MM-DD', 'dateTime'][date[2]!.length > 10 ? 3 : [4, 7, 10].indexOf(date[2]!.length)]}>`;
    if (!mask.has(v)) mask.set(v, `<value ${mask.size + 1}>`);
    return `${k}=${mask.get(v)}`;
  });
  return `${q.type}?${shown.join('&')}`;
}

function diff(got: readonly string[], expected: readonly string[]): string {
  const g = new Set(got);
  const e = new Set(expected);
  const missing = expected.filter((x) => !g.has(x));
  const extra = got.filter((x) => !e.has(x));
  const dupes = got.filter((x, i) => got.indexOf(x) !== i);
  const parts = [];
  if (missing.length) parts.push(`missing [${missing.join(', ')}]`);
  if (extra.length) parts.push(`extra [${extra.join(', ')}]`);
  if (dupes.length) parts.push(`repeated [${dupes.join(', ')}]`);
  if (!parts.length) parts.push(`order differs: got [${got.join(', ')}]`);
  return parts.join('; ');
}

async function main(): Promise<void> {
  const started = Date.now();
  if (!existsSync(dir)) {
    console.error(
      `synthea-compare: no directory ${dir} (give the Synthea bundle directory as the first argument)`,
    );
    process.exitCode = 2;
    return;
  }
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort();
  const { db, label, close } = await openDatabase();
  const keyDir = mkdtempSync(join(tmpdir(), 'synthea-keys-'));
  try {
    const storage = createStorage(db, LocalKeyringProvider.openOrCreate(join(keyDir, 'keyring.json')));
    const engine = createFhirEngine(storage.store, 'http://synthea-compare.local');
    const all: Res[] = [];
    const failed: string[] = [];
    for (const f of files) {
      try {
        all.push(...(await load(engine, join(dir, f))));
        progress(`loaded bundle ${all.length} resources, ${Date.now() - started} ms`);
      } catch (err) {
        const why =
          err instanceof FhirError
            ? `${err.status} ${err.outcome.issue?.[0]?.expression?.join(',') ?? ''}`
            : 'error';
        failed.push(`${f.replace(/^[^_]*_[^_]*_/, '')}: ${why}`); // file names start with the patient's name
      }
    }
    const loadMs = Date.now() - started;
    progress(`loaded ${all.length} resources in ${loadMs} ms`);
    const perType = new Map<string, number>();
    for (const r of all) perType.set(r.resourceType, (perType.get(r.resourceType) ?? 0) + 1);

    const queries = buildQueries(all);
    const mask = new Map<string, string>();
    const disagreements: string[] = [];
    const errors: string[] = [];
    const groups = new Map<string, { n: number; nonEmpty: number; bad: number }>();
    let serverMs = 0;
    let evaluatorMs = 0;
    let matchesCompared = 0;
    let includesCompared = 0;
    progress(`${queries.length} queries`);
    for (const [qi, q] of queries.entries()) {
      if (qi % 100 === 0)
        progress(`query ${qi}, ${Date.now() - started} ms (server ${serverMs}, evaluator ${evaluatorMs})`);
      const g = groups.get(q.group) ?? { n: 0, nonEmpty: 0, bad: 0 };
      groups.set(q.group, g);
      g.n++;
      const filters = q.params.filter(([k]) => !CONTROL.has(k));
      const include = q.params.filter(([k]) => k === '_include').map(([, v]) => v);
      const revinclude = q.params.filter(([k]) => k === '_revinclude').map(([, v]) => v);
      let t = Date.now();
      let expected: string[];
      try {
        expected = bruteForce(all, q.type, filters);
      } catch (err) {
        g.bad++;
        errors.push(`${describeQuery(q, mask)} -> evaluator: ${String(err)}`);
        continue;
      }
      evaluatorMs += Date.now() - t;
      let got: Walk;
      try {
        t = Date.now();
        got = await walk(engine, q);
        serverMs += Date.now() - t;
      } catch (err) {
        g.bad++;
        const why =
          err instanceof FhirError
            ? `${err.status} ${err.outcome.issue?.[0]?.diagnostics ?? ''}`
            : String(err);
        errors.push(`${describeQuery(q, mask)} -> ${why}`);
        continue;
      }
      if (expected.length > 0) g.nonEmpty++;
      matchesCompared += expected.length;
      const problems: string[] = [];
      // Match ids in the server's documented order (id order, page after page).
      if (JSON.stringify(got.ids) !== JSON.stringify(expected))
        problems.push(`matches: ${diff(got.ids, expected)}`);
      for (const [i, page] of got.pages.entries()) {
        if (include.length === 0 && revinclude.length === 0) {
          if (page.included.length) problems.push(`page ${i + 1}: includes without _include`);
          continue;
        }
        const want = includedKeys(all, page.matches, include, revinclude);
        includesCompared += want.length;
        if (JSON.stringify(page.included) !== JSON.stringify(want))
          problems.push(`page ${i + 1} includes: ${diff(page.included, want)}`);
      }
      if (problems.length) {
        g.bad++;
        disagreements.push(`${describeQuery(q, mask)}\n      ${problems.join('\n      ')}`);
      }
    }

    const out = [
      `Synthea comparison on ${label}`,
      `  bundles: ${files.length - failed.length} of ${files.length} loaded as transactions (${loadMs} ms)`,
      ...failed.map((f) => `    not loaded: ${f}`),
      `  resources: ${all.length} (${[...perType]
        .sort((a, b) => b[1] - a[1])
        .map(([t, n]) => `${t} ${n}`)
        .join(', ')})`,
      `  queries compared: ${queries.length} (${matchesCompared} expected matches, ${includesCompared} expected included resources)`,
      ...[...groups].map(
        ([name, s]) => `    ${name}: ${s.n} queries, ${s.nonEmpty} non-empty, ${s.bad} disagreeing`,
      ),
      `  disagreements: ${disagreements.length}`,
      ...disagreements.map((d) => `    ${d}`),
      `  errors: ${errors.length}`,
      ...errors.map((e) => `    ${e}`),
      `  time: ${Date.now() - started} ms (load ${loadMs}, server searches ${serverMs}, evaluator ${evaluatorMs})`,
    ];
    console.log(out.join('\n'));
    process.exitCode = disagreements.length + errors.length + failed.length > 0 ? 1 : 0;
  } finally {
    await close();
    rmSync(keyDir, { recursive: true, force: true });
  }
}

await main();
