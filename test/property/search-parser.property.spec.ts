import { getSearchParameters } from '@medplum/core';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadR4Definitions } from '../../apps/fhir-gateway/src/fhir/definitions.js';
import { createFhirEngine } from '../../apps/fhir-gateway/src/fhir/fhir-engine.factory.js';
import type { FhirEngine } from '../../apps/fhir-gateway/src/fhir/fhir-engine.js';
import { FhirError } from '../../apps/fhir-gateway/src/fhir/outcomes.js';
import { planSearch } from '../../apps/fhir-gateway/src/search/search-query.js';
import { generatePatients } from '../support/patient-generator.js';
import { openTestStorage, type TestStorage } from '../support/storage.js';
import { testContext } from '../support/test-context.js';

/**
 * Property tests of the search query parser (issue #3): arbitrary query maps, built from real parameter
 * names with random modifiers, chains, _has, prefixes, escapes and hostile values, for several resource
 * types. planSearch may only answer with a plan or a FhirError that is a 400 (or a 501 for a feature not
 * supported yet), names the offending parameter in OperationOutcome.issue.expression and never echoes a
 * value. The same queries through the engine on a small database give a 200 Bundle or a 4xx/501, never
 * anything else, and injection strings leave the tables as they were.
 *
 * Two inputs once gave a 500 and are generated on purpose: a NUL character in an `_id` value and
 * `_lastUpdated` ranges that end after year 9999 (both fixed; see search-features.spec.ts).
 */
loadR4Definitions();

const TYPES = ['Patient', 'Observation', 'Encounter', 'Condition', 'MedicationRequest'] as const;
const CONTROL = ['_count', '_total', '_summary', '_cursor', '_elements', '_format', '_pretty'];
const SPECIAL = [
  '_id',
  '_lastUpdated',
  '_include',
  '_revinclude',
  '_sort',
  '_has',
  '_type',
  '_text',
  '_content',
  '_list',
  '_query',
  '_filter',
  '_tag',
  '_profile',
  '_security',
  '_source',
];
const MODIFIERS = [
  'exact',
  'contains',
  'missing',
  'text',
  'not',
  'above',
  'below',
  'in',
  'not-in',
  'of-type',
  'identifier',
  'iterate',
  'Patient',
  'Practitioner',
  'Group',
  'patient',
  '',
];
const PREFIXES = ['', 'eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap', 'xx', 'EQ'];
const INJECTION = [
  "' OR '1'='1",
  "x'; DROP TABLE resource; --",
  "'); DELETE FROM resource; --",
  '" OR ""="',
  '1; TRUNCATE resource_history',
  "' UNION SELECT content FROM resource --",
  '$1',
  '$$; DROP TABLE resource; $$',
  '\\',
  '%',
  '_%',
  '*/ DROP TABLE resource /*',
  '{"$ne":null}',
  '../../etc/passwd',
  '<script>alert(1)</script>',
];

const paramCodes = (type: string) => Object.keys(getSearchParameters(type) ?? {});
const referenceCodes = (type: string) =>
  Object.values(getSearchParameters(type) ?? {})
    .filter((p) => p.type === 'reference')
    .map((p) => p.code);

/** Strings that exercise encodings: unicode graphemes, any code unit (lone surrogates, controls). */
const anyString = (maxLength: number) =>
  fc.oneof(
    fc.string({ maxLength }),
    fc.string({ unit: 'grapheme', maxLength }),
    fc.string({ unit: 'binary', maxLength }),
    fc.string({
      unit: fc.constantFrom(',', '\\', '$', '|', ':', '.', '/', '%', ' ', 'a', 'é', '0'),
      maxLength,
    }),
  );

function keyArb(type: string): fc.Arbitrary<string> {
  const codes = paramCodes(type);
  const refs = referenceCodes(type);
  return fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...codes) },
    {
      weight: 3,
      arbitrary: fc
        .tuple(fc.constantFrom(...codes), fc.oneof(fc.constantFrom(...MODIFIERS), anyString(8)))
        .map(([c, m]) => `${c}:${m}`),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom(...refs), fc.option(fc.constantFrom(...TYPES)), fc.constantFrom(...codes))
        .map(([r, t, c]) => `${r}${t ? `:${t}` : ''}.${c}`),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          fc.constantFrom(...TYPES),
          fc.constantFrom('patient', 'subject', 'x'),
          fc.constantFrom(...codes),
        )
        .map(([t, r, c]) => `_has:${t}:${r}:${c}`),
    },
    { weight: 3, arbitrary: fc.constantFrom(...CONTROL, ...SPECIAL) },
    {
      weight: 1,
      arbitrary: fc.tuple(fc.constantFrom(...CONTROL, ...SPECIAL), anyString(6)).map(([c, m]) => `${c}:${m}`),
    },
    { weight: 2, arbitrary: anyString(12) },
  );
}

const dateLike = fc.oneof(
  fc.constantFrom(
    '2020',
    '2020-02',
    '2020-02-29',
    '2021-02-29',
    '2020-13',
    '2020-01-32',
    '2020-01-01T10:00',
    '2020-01-01T10:00:00Z',
    '2020-01-01T10:00:00.123456789+05:30',
    '2020-01-01T24:00:00Z',
    '2020-01-01T10:00:60Z',
    '1800',
    '0001',
    '2200',
    '99999',
    'today',
    '',
  ),
  fc
    .tuple(
      fc.integer({ min: 1, max: 9998 }),
      fc.integer({ min: 0, max: 13 }),
      fc.integer({ min: 0, max: 32 }),
      fc.boolean(),
    )
    .map(
      ([y, m, d, t]) =>
        `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}${t ? 'T12:00:00Z' : ''}`,
    ),
);

function valueArb(type: string): fc.Arbitrary<string> {
  const codes = paramCodes(type);
  const refs = referenceCodes(type);
  const one = fc.oneof(
    { weight: 4, arbitrary: anyString(30) },
    { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...PREFIXES), dateLike).map(([p, d]) => p + d) },
    { weight: 2, arbitrary: fc.constantFrom(...INJECTION) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(anyString(10), fc.constantFrom('|', '\\|', '$', '\\$', ','), anyString(10))
        .map(([a, s, b]) => a + s + b),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom(...TYPES, 'Foo', '*', ''), fc.constantFrom(...refs, ...codes, '*', ''))
        .chain(([s, p]) =>
          fc
            .option(fc.constantFrom(...TYPES, 'lower', '1x', ''))
            .map((t) => `${s}:${p}${t !== null ? `:${t}` : ''}`),
        ),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        'Patient/123',
        'Patient/123/_history/2',
        'http://example.org/fhir/Patient/123',
        'urn:uuid:0e4f1b4c-8f7e-4a0e-9b3e-3a1d2c9f7a10',
        'Patient/',
        '/Patient/1',
        'Patient/../Observation/1',
      ),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '-1',
        '0',
        '1',
        '1000',
        '1001',
        '99999999',
        '1e3',
        '1.5',
        ' 5',
        'accurate',
        'count',
      ),
    },
    { weight: 1, arbitrary: fc.integer({ min: 1000, max: 70_000 }).map((n) => 'x'.repeat(n)) },
    { weight: 1, arbitrary: fc.constant('') },
  );
  return fc.oneof(
    { weight: 4, arbitrary: one },
    { weight: 1, arbitrary: fc.array(one, { maxLength: 4 }).map((xs) => xs.join(',')) },
  );
}

function queryArb(): fc.Arbitrary<{ type: string; query: Record<string, string[]> }> {
  return fc.constantFrom(...TYPES).chain((type) =>
    fc
      .array(fc.tuple(keyArb(type), fc.array(valueArb(type), { minLength: 1, maxLength: 3 })), {
        maxLength: 5,
      })
      .map((pairs) => {
        // A parsed query string: an own-property map (never an inherited name such as __proto__).
        const query: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
        for (const [k, vs] of pairs) (query[k] ??= []).push(...vs);
        return { type, query: { ...query } };
      }),
  );
}

/** Which not-yet-supported feature a 501 names, for the tally (from its diagnostics). */
function feature(diagnostics: string): string {
  const modifier = /^modifier :([\s\S]*) is not supported yet on /.exec(diagnostics);
  if (modifier) {
    const m = modifier[1]!;
    return `modifier :${MODIFIERS.includes(m) ? m : /^[A-Z][A-Za-z]+$/.test(m) ? '<Type>' : '<not a FHIR modifier>'}`;
  }
  const terminology = /^:([a-z-]+) needs terminology services/.exec(diagnostics);
  if (terminology) return `modifier :${terminology[1]} (terminology)`;
  const onReference = /^:([a-z-]+) on references is not supported$/.exec(diagnostics);
  if (onReference) return `modifier :${onReference[1]} on references`;
  const param = /^search parameter ([\s\S]*) is not supported(?: yet)?$/.exec(diagnostics);
  if (param) {
    const code = param[1]!;
    if (code.includes('.')) return 'chain';
    if (code.startsWith('_')) return code;
    return 'parameter of an unindexed type';
  }
  if (/^prefix ap is not supported yet$/.test(diagnostics)) return 'prefix ap';
  if (/^_(rev)?include=\* is not supported yet$/.test(diagnostics)) return '_include=*';
  if (/^_(rev)?include:[\s\S]* is not supported yet$/.test(diagnostics)) return '_include modifier';
  return `<unclassified> ${diagnostics.slice(0, 40)}`;
}

/** Values a diagnostic could only contain by echoing client input: long enough, and no part of a key. */
function echoedValues(query: Record<string, string[]>, diagnostics: string): string[] {
  const keys = Object.keys(query).join('\n');
  return Object.entries(query)
    .flatMap(([, vs]) => vs)
    .flatMap((v) => [v, ...v.split(',')])
    .filter((v) => v.trim().length >= 6 && !keys.includes(v) && diagnostics.includes(v));
}

/** Checks one thrown error; returns the 501 feature it names, if any. */
function checkError(err: unknown, query: Record<string, string[]>): string | undefined {
  if (!(err instanceof FhirError)) throw err;
  expect([400, 501]).toContain(err.status);
  expect(err.outcome.resourceType).toBe('OperationOutcome');
  const issue = err.outcome.issue?.[0];
  expect(issue?.severity).toBe('error');
  const diagnostics = issue?.diagnostics ?? '';
  expect(diagnostics.length).toBeGreaterThan(0);
  // The expression names a parameter of the query: a key, or the code part of one.
  const expression = issue?.expression ?? [];
  expect(expression.length).toBeGreaterThan(0);
  const named = Object.keys(query).filter((k) => expression.some((e) => e === k || e === k.split(':')[0]));
  expect(named.length).toBeGreaterThan(0);
  expect(echoedValues(query, diagnostics)).toEqual([]);
  return err.status === 501 ? feature(diagnostics) : undefined;
}

describe('search query parser (property)', () => {
  it('answers every query map with a plan or a 400/501 FhirError naming the parameter and echoing no value', () => {
    const tally = new Map<string, number>();
    let plans = 0;
    let bad = 0;
    fc.assert(
      fc.property(queryArb(), fc.boolean(), ({ type, query }, strict) => {
        try {
          const plan = planSearch(type, query, strict);
          plans++;
          expect(plan.resourceType).toBe(type);
          expect(plan.count).toBeGreaterThanOrEqual(1);
          expect(plan.count).toBeLessThanOrEqual(1000);
        } catch (err) {
          const f = checkError(err, query);
          if (f === undefined) bad++;
          else tally.set(f, (tally.get(f) ?? 0) + 1);
          // The error is the parameter's own: the named entries alone fail the same way.
          const e = err as FhirError;
          const expression = e.outcome.issue?.[0]?.expression ?? [];
          const alone = Object.fromEntries(
            Object.entries(query).filter(([k]) => expression.some((x) => x === k || x === k.split(':')[0])),
          );
          let again: unknown;
          try {
            planSearch(type, alone, strict);
          } catch (e2) {
            again = e2;
          }
          expect(again).toBeInstanceOf(FhirError);
          expect((again as FhirError).status).toBe(e.status);
        }
      }),
      {
        numRuns: Number(process.env.PARSER_RUNS ?? 3000),
        seed: Number(process.env.PROPERTY_SEED ?? 20261126),
      },
    );
    const features = [...tally].sort((a, b) => b[1] - a[1]);
    console.log(
      `parser: ${plans} plans, ${bad} x 400, 501 by feature: ${features.map(([f, n]) => `${f}=${n}`).join(', ')}`,
    );
    // The generator reaches all three outcomes, and every 501 names a feature the README lists.
    expect(plans).toBeGreaterThan(100);
    expect(bad).toBeGreaterThan(100);
    expect(features.filter(([f]) => f.startsWith('<unclassified>'))).toEqual([]);
  });

  it('never echoes a value: sentinel values never appear in diagnostics', () => {
    const sentinel = fc.stringMatching(/^[a-z0-9]{6}$/).map((s) => `PHI${s}`);
    fc.assert(
      fc.property(
        fc
          .constantFrom(...TYPES)
          .chain((type) =>
            fc.tuple(
              fc.constant(type),
              keyArb(type),
              fc.tuple(
                fc.constantFrom(...PREFIXES, 'Patient:', 'a|', '|', 'Patient/', ''),
                sentinel,
                anyString(5),
              ),
            ),
          ),
        fc.boolean(),
        ([type, key, [before, s, after]], strict) => {
          try {
            planSearch(type, { [key]: [`${before}${s}${after}`] }, strict);
          } catch (err) {
            checkError(err, { [key]: [`${before}${s}${after}`] });
            expect((err as FhirError).outcome.issue?.[0]?.diagnostics).not.toMatch(/PHI[a-z0-9]{6}/);
            expect((err as FhirError).message).not.toMatch(/PHI[a-z0-9]{6}/);
          }
        },
      ),
      { numRuns: 1500, seed: Number(process.env.PROPERTY_SEED ?? 20261126) },
    );
  });
});

describe('search through the engine (property)', () => {
  let storage: TestStorage;
  let engine: FhirEngine;
  const ctx = testContext();
  const counts = async () => {
    const { rows } = await storage.db.query<{ r: number; h: number; t: number }>(
      `SELECT (SELECT count(*)::int FROM resource) AS r, (SELECT count(*)::int FROM resource_history) AS h,
              (SELECT coalesce(sum(cardinality(search_tokens)), 0)::int FROM resource) AS t`,
    );
    return rows[0];
  };
  const all = async () => {
    const res = await engine.handle(ctx, {
      method: 'GET',
      path: 'Patient',
      query: { _total: ['accurate'], _count: ['1'] },
      headers: {},
    });
    return (res.body as { total?: number }).total;
  };

  beforeAll(async () => {
    storage = await openTestStorage();
    engine = createFhirEngine(storage.store, 'http://h');
    for (const g of generatePatients(8, 7)) {
      const res = await engine.handle(ctx, {
        method: 'POST',
        path: 'Patient',
        query: {},
        headers: {},
        body: g.patient,
      });
      const id = (JSON.parse((res.body as Buffer).toString('utf8')) as { id: string }).id;
      for (const o of g.observations) {
        await engine.handle(ctx, {
          method: 'POST',
          path: 'Observation',
          query: {},
          headers: {},
          body: { ...o, subject: { reference: `Patient/${id}` }, effectiveDateTime: '2020-03-01T12:00:00Z' },
        });
      }
    }
  }, 60_000);
  afterAll(async () => storage.close());

  it('answers a 200 searchset Bundle or a 4xx/501 OperationOutcome, never a 500, and injection changes nothing', async () => {
    const before = await counts();
    const total = await all();
    expect(total).toBe(8);
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(queryArb(), fc.boolean(), async ({ type, query }, strict) => {
        let status: number;
        try {
          const res = await engine.handle(ctx, {
            method: 'GET',
            path: type,
            query,
            headers: strict ? { prefer: 'handling=strict' } : {},
          });
          status = res.status;
          const bundle = res.body as {
            resourceType: string;
            type: string;
            entry?: { resource: { resourceType: string } }[];
          };
          expect(res.status).toBe(200);
          expect(bundle.resourceType).toBe('Bundle');
          expect(bundle.type).toBe('searchset');
        } catch (err) {
          if (!(err instanceof FhirError)) throw err;
          status = err.status;
          expect(err.status === 501 || (err.status >= 400 && err.status < 500)).toBe(true);
          expect(err.outcome.resourceType).toBe('OperationOutcome');
          expect(echoedValues(query, err.outcome.issue?.[0]?.diagnostics ?? '')).toEqual([]);
        }
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }),
      {
        numRuns: Number(process.env.ENGINE_RUNS ?? 400),
        seed: Number(process.env.PROPERTY_SEED ?? 20261126),
      },
    );
    console.log(`engine: status counts ${[...statuses].map(([s, n]) => `${s}=${n}`).join(', ')}`);
    expect(statuses.get(200) ?? 0).toBeGreaterThan(20);
    // Injection strings in every kind of value were harmless: the tables and the answers are unchanged.
    for (const type of TYPES) {
      for (const key of [
        '_id',
        '_cursor',
        'identifier',
        'subject',
        '_lastUpdated',
        '_revinclude',
        '_include',
      ]) {
        for (const v of INJECTION) {
          try {
            await engine.handle(ctx, { method: 'GET', path: type, query: { [key]: [v] }, headers: {} });
          } catch (err) {
            expect(err).toBeInstanceOf(FhirError);
            expect((err as FhirError).status).toBeLessThan(500);
          }
        }
      }
    }
    expect(await counts()).toEqual(before);
    expect(await all()).toBe(total);
  }, 60_000);
});
