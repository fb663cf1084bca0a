import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFhirEngine } from '../../apps/fhir-gateway/src/fhir/fhir-engine.factory.js';
import type { FhirEngine } from '../../apps/fhir-gateway/src/fhir/fhir-engine.js';
import type { FhirRequest } from '../../apps/fhir-gateway/src/fhir/fhir-types.js';
import { bruteForce } from '../differential/independent-evaluator.js';
import { generatePatients, mulberry32 } from '../support/patient-generator.js';
import { openTestStorage, type TestStorage } from '../support/storage.js';
import { testContext } from '../support/test-context.js';

/**
 * Paging property (issue #3): for random search criteria and a random _count, walk every next link while
 * other requests create, update and delete resources at the same time. Pages are disjoint; every resource
 * that matched before the walk and was not written during it appears exactly once; nothing appears that
 * never matched (at the start or in some version written during the walk). Without concurrent writes the
 * pages, in order, are exactly the full result (in id order), checked against the independent evaluator.
 * Runs on PGlite and, with TEST_DATABASE_URL, on real Postgres (where the writes really run in parallel).
 */
type Res = { resourceType: string; id: string } & Record<string, unknown>;

const N = 40;
const SEED = Number(process.env.PROPERTY_SEED ?? 20261127);
let storage: TestStorage;
let engine: FhirEngine;
const ctx = testContext();
/** The current resources as the server stored them, kept in step with every write. */
const current = new Map<string, Res>();
/** Ids no writer ever touches. */
const stable = new Set<string>();

const FAMILY = ['Okonkwo', 'Lindqvist', 'Haddad', 'Fitzgerald', 'Nakamura', 'Petrova', 'Castillo', 'Brennan'];
const GIVEN = ['Amelia', 'Oliver', 'Isla', 'Arjun', 'Sofia', 'Mateo', 'Hannah', 'Kwame', 'Mei', 'Lucas'];

const body = (b: unknown): Res => (b instanceof Buffer ? JSON.parse(b.toString('utf8')) : b) as Res;
const call = (req: Omit<FhirRequest, 'query' | 'headers'> & Partial<FhirRequest>) =>
  engine.handle(ctx, { query: {}, headers: {}, ...req });

async function create(resource: Record<string, unknown>): Promise<Res> {
  const res = await call({ method: 'POST', path: resource.resourceType as string, body: resource });
  const stored = body(res.body);
  current.set(`${stored.resourceType}/${stored.id}`, stored);
  return stored;
}

beforeAll(async () => {
  storage = await openTestStorage();
  engine = createFhirEngine(storage.store, 'http://h');
  for (const [i, g] of generatePatients(N, SEED).entries()) {
    const p = await create(g.patient);
    // The first half is never written again; the rest is the writers' pool.
    if (i < N / 2) stable.add(p.id);
    if (i % 8 === 0)
      for (const o of g.observations)
        await create({ ...o, subject: { reference: `Patient/${p.id}` }, effectiveDateTime: '2021-05-04' });
  }
}, 60_000);
afterAll(async () => storage?.close());

const criteria: fc.Arbitrary<[string, string][]> = fc
  .array(
    fc.oneof(
      fc.constantFrom('male', 'female', 'male,female').map((g): [string, string] => ['gender', g]),
      fc
        .tuple(fc.constantFrom(...FAMILY), fc.integer({ min: 1, max: 4 }))
        .map(([f, n]): [string, string] => ['family', f.slice(0, n)]),
      fc
        .tuple(fc.constantFrom(...GIVEN), fc.constantFrom(...FAMILY))
        .map(([g, f]): [string, string] => ['name', `${g.slice(0, 2)},${f.slice(0, 3)}`]),
      fc
        .tuple(
          fc.constantFrom('ge', 'lt', 'le', 'gt', 'eq', 'ne', 'sa', 'eb'),
          fc.integer({ min: 1905, max: 2000 }),
        )
        .map(([p, y]): [string, string] => ['birthdate', `${p}${y}`]),
    ),
    { maxLength: 2 },
  )
  .map((cs) => cs.filter(([k], i) => cs.findIndex(([k2]) => k2 === k) === i));

/** Walks all next links; returns the ids of every page. */
async function walk(q: [string, string][], count: number): Promise<string[][]> {
  let query: Record<string, string[]> = { _count: [String(count)] };
  for (const [k, v] of q) (query[k] ??= []).push(v);
  const pages: string[][] = [];
  for (let i = 0; i < 500; i++) {
    const res = await call({ method: 'GET', path: 'Patient', query });
    expect(res.status).toBe(200);
    const bundle = res.body as {
      entry?: { resource: Res; search?: { mode?: string } }[];
      link: { relation: string; url: string }[];
    };
    const page = (bundle.entry ?? []).filter((e) => e.search?.mode === 'match').map((e) => e.resource.id);
    expect(page.length).toBeLessThanOrEqual(count);
    pages.push(page);
    const next = bundle.link.find((l) => l.relation === 'next');
    if (!next) return pages;
    query = {};
    for (const [k, v] of new URL(next.url).searchParams) (query[k] ??= []).push(v);
  }
  throw new Error('more than 500 pages');
}

const patients = () => [...current.values()].filter((r) => r.resourceType === 'Patient');
const matching = (q: [string, string][], rs: Res[]) => new Set(bruteForce(rs, 'Patient', q));

/**
 * Writes to everything but the stable patients until `done` says stop (and at least `minOps` times):
 * new patients, updates that change the searched fields, deletes, and observations. Returns the ids it
 * touched and every Patient version it wrote.
 */
async function writer(
  seed: number,
  done: () => boolean,
  minOps: number,
): Promise<{ touched: Set<string>; versions: Res[]; duringWalk: number }> {
  const rnd = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const touched = new Set<string>();
  const versions: Res[] = [];
  let duringWalk = 0;
  const fresh = () => ({
    resourceType: 'Patient',
    name: [{ family: `${pick(FAMILY)}${Math.floor(rnd() * 1e6)}`, given: [pick(GIVEN)] }],
    gender: pick(['male', 'female']),
    birthDate: `${1905 + Math.floor(rnd() * 95)}-0${1 + Math.floor(rnd() * 9)}-1${Math.floor(rnd() * 9)}`,
  });
  for (let ops = 0; ops < minOps || !done(); ops++) {
    const pool = patients().filter((p) => !stable.has(p.id));
    const op = rnd();
    if (op < 0.3 || pool.length === 0) {
      const p = await create(fresh());
      touched.add(p.id);
      versions.push(p);
    } else if (op < 0.65) {
      const target = pick(pool);
      touched.add(target.id);
      const res = await call({
        method: 'PUT',
        path: `Patient/${target.id}`,
        body: { ...fresh(), id: target.id },
      });
      const stored = body(res.body);
      current.set(`Patient/${stored.id}`, stored);
      versions.push(stored);
    } else if (op < 0.8) {
      const target = pick(pool);
      touched.add(target.id);
      await call({ method: 'DELETE', path: `Patient/${target.id}` });
      current.delete(`Patient/${target.id}`);
    } else {
      await create({
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
        subject: { reference: `Patient/${pick(patients()).id}` },
      });
    }
    if (!done()) duringWalk++;
    // Let the walker run between writes.
    await new Promise((r) => setImmediate(r));
  }
  return { touched, versions, duringWalk };
}

describe('search paging (property)', () => {
  it('pages are disjoint and complete without writes, and stable under concurrent writes', async () => {
    let walks = 0;
    let pagesSeen = 0;
    let writes = 0;
    let interleaved = 0;
    const started = Date.now();
    await fc.assert(
      fc.asyncProperty(criteria, fc.integer({ min: 1, max: 12 }), fc.integer(), async (q, count, seed) => {
        // 1. No concurrent writes: the pages in order are exactly the evaluator's result, in id order.
        const quiet = await walk(q, count);
        const quietIds = quiet.flat();
        const expected = bruteForce(patients(), 'Patient', q);
        expect(quietIds).toEqual(expected);
        expect(quietIds).toEqual([...quietIds].sort());
        // A page is short only at the end.
        for (const page of quiet.slice(0, -1)) expect(page.length).toBe(count);

        // 2. The same walk with writers running until it ends.
        const before = patients();
        const matchedBefore = matching(q, before);
        let walking = true;
        const [pages, w] = await Promise.all([
          walk(q, count).finally(() => (walking = false)),
          writer(seed, () => !walking, 3),
        ]);
        walks += 2;
        pagesSeen += quiet.length + pages.length;
        writes += w.versions.length;
        // Writes landed between the first and the last page of a walk of several pages.
        if (pages.length > 2 && w.duringWalk > 0) interleaved++;
        const ids = pages.flat();
        // Disjoint pages, no repeats inside a page.
        expect(new Set(ids).size).toBe(ids.length);
        // Every resource that matched and was left alone appears (exactly once, by the line above).
        const got = new Set(ids);
        const missing = [...matchedBefore].filter((id) => !w.touched.has(id) && !got.has(id));
        expect(missing).toEqual([]);
        // Nothing that never matched: each id matched before the walk or in a version written during it.
        const matchedDuring = matching(q, w.versions);
        const stray = ids.filter((id) => !matchedBefore.has(id) && !matchedDuring.has(id));
        expect(stray).toEqual([]);
        // The stable patients are still all there (writers never touched them).
        expect(before.filter((p) => stable.has(p.id)).length).toBe(N / 2);
      }),
      { numRuns: Number(process.env.PAGING_RUNS ?? 40), seed: SEED, endOnFailure: true },
    );
    console.log(
      `paging: ${walks} walks, ${pagesSeen} pages, ${writes} concurrent patient writes, ${interleaved} walks with writes between pages, ${Date.now() - started} ms`,
    );
    expect(interleaved).toBeGreaterThan(0);
  }, 60_000);
});
