import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFhirEngine } from '../../apps/fhir-gateway/src/fhir/fhir-engine.factory.js';
import type { FhirEngine } from '../../apps/fhir-gateway/src/fhir/fhir-engine.js';
import { mulberry32 } from '../support/patient-generator.js';
import { openTestStorage, type TestStorage } from '../support/storage.js';
import { testContext } from '../support/test-context.js';
import { bruteForce } from './independent-evaluator.js';

/**
 * Differential harness (issue #3): generated data full of the boundaries servers get wrong (date
 * precision, time zones near midnight, open periods, accents, several names, missing values, references
 * of several types), random queries over it, and the server's result ids compared with an independent
 * brute-force evaluator. Runs on PGlite and, in CI, on real Postgres.
 */
const QUERIES = Number(process.env.DIFF_QUERIES ?? 400);
let storage: TestStorage;
let engine: FhirEngine;
const ctx = testContext();
const stored: ({ resourceType: string; id: string } & Record<string, unknown>)[] = [];
const rnd = mulberry32(20261125);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;

const FAMILIES = [
  'Zoë',
  'Zoe',
  'Müller',
  'Muller',
  'García',
  'Garcia-Lopez',
  "O'Brien",
  'van der Berg',
  'Ng',
  'Łukasz',
];
const GIVEN = ['Ána', 'Anna', 'Éloïse', 'Eloise', 'Jo', 'José', 'Zoë'];
const DATES = [
  '1970',
  '1970-01',
  '1970-01-01',
  '1969-12-31',
  '1999-12',
  '2000',
  '2000-02-29',
  '2020-03-01',
  '2020-03-02',
  '2020-02',
];
const INSTANTS = [
  '2020-03-01T23:30:00-05:00', // 2020-03-02 in UTC
  '2020-03-01T00:15:00+02:00', // 2020-02-29 in UTC
  '2020-03-01T12:00:00Z',
  '2020-03-01T12:00:00.250Z',
  '2020-03-02T00:00:00Z',
  '2019-12-31T23:59:59Z',
];
const CODES = [
  { system: 'http://loinc.org', code: '8867-4' },
  { system: 'http://loinc.org', code: '8310-5' },
  { system: 'http://snomed.info/sct', code: '8867-4' },
  { code: '8867-4' },
];

async function create(body: Record<string, unknown>): Promise<void> {
  const res = await engine.handle(ctx, {
    method: 'POST',
    path: body.resourceType as string,
    query: {},
    headers: {},
    body,
  });
  stored.push(JSON.parse((res.body as Buffer).toString('utf8')));
}

beforeAll(async () => {
  storage = await openTestStorage();
  engine = createFhirEngine(storage.store, 'http://h');
  for (let i = 0; i < 40; i++) {
    const names = Array.from({ length: 1 + Math.floor(rnd() * 2) }, () => ({
      ...(rnd() < 0.9 ? { family: pick(FAMILIES) } : {}),
      given: [pick(GIVEN)],
    }));
    await create({
      resourceType: 'Patient',
      name: names,
      ...(rnd() < 0.8 ? { gender: pick(['male', 'female', 'other', 'unknown']) } : {}),
      ...(rnd() < 0.85 ? { birthDate: pick(DATES) } : {}),
      identifier: [
        rnd() < 0.7 ? { system: pick(['urn:mrn', 'urn:ssn']), value: `V${i % 7}` } : { value: `V${i % 7}` },
      ],
      ...(rnd() < 0.5 ? { telecom: [{ system: 'phone', value: `555-01${i % 5}` }] } : {}),
    });
  }
  const patients = stored.filter((r) => r.resourceType === 'Patient');
  await create({ resourceType: 'Group', type: 'person', actual: true });
  const group = stored[stored.length - 1]!;
  for (let i = 0; i < 120; i++) {
    const subject = rnd() < 0.9 ? `Patient/${pick(patients).id}` : `Group/${group.id}`;
    const when =
      rnd() < 0.6
        ? { effectiveDateTime: pick([...INSTANTS, ...DATES]) }
        : {
            effectivePeriod:
              rnd() < 0.4
                ? { start: pick(DATES) }
                : rnd() < 0.5
                  ? { end: pick(INSTANTS) }
                  : { start: pick(DATES), end: pick(INSTANTS) },
          };
    await create({
      resourceType: 'Observation',
      status: pick(['final', 'amended', 'preliminary']),
      code: { coding: [pick(CODES)] },
      subject: { reference: subject },
      ...(rnd() < 0.9 ? when : {}),
    });
  }
}, 120_000);
afterAll(async () => storage.close());

function randomQuery(): { type: string; query: [string, string][] } {
  const patients = stored.filter((r) => r.resourceType === 'Patient');
  const prefix = () => pick(['', 'eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb']);
  const family = () => {
    const f = pick(FAMILIES);
    const cut = f.slice(0, 1 + Math.floor(rnd() * f.length));
    return rnd() < 0.3 ? cut.toUpperCase() : cut;
  };
  const patientClauses: (() => [string, string])[] = [
    () => ['family', family()],
    () => ['name', rnd() < 0.5 ? family() : pick(GIVEN).slice(0, 2)],
    () => ['given', pick(GIVEN).toLowerCase().slice(0, 3)],
    () => ['family:exact', pick(FAMILIES)],
    () => ['gender', rnd() < 0.3 ? 'male,female' : pick(['male', 'female', 'other', 'unknown'])],
    () => ['identifier', pick(['urn:mrn|V1', 'V2', 'urn:ssn|', '|V3', 'urn:mrn|V9'])],
    () => ['birthdate', `${prefix()}${pick(DATES)}`],
    () => ['telecom', `555-01${Math.floor(rnd() * 6)}`],
    () => ['_id', `${pick(patients).id},${pick(patients).id}`],
  ];
  const obsClauses: (() => [string, string])[] = [
    () => {
      const c = pick(CODES);
      return ['code', rnd() < 0.5 && c.system ? `${c.system}|${c.code}` : c.code];
    },
    () => ['subject', `Patient/${pick(patients).id}`],
    () => ['patient', pick(patients).id],
    () => ['subject:Patient', pick(patients).id],
    () => ['date', `${prefix()}${pick([...DATES, ...INSTANTS])}`],
    () => ['status', rnd() < 0.3 ? 'final,amended' : pick(['final', 'amended', 'preliminary'])],
  ];
  const isPatient = rnd() < 0.5;
  const clauses = isPatient ? patientClauses : obsClauses;
  const n = 1 + Math.floor(rnd() * 2);
  return {
    type: isPatient ? 'Patient' : 'Observation',
    query: Array.from({ length: n }, () => pick(clauses)()),
  };
}

async function serverIds(type: string, q: [string, string][]): Promise<string[]> {
  let query: Record<string, string[]> = { _count: ['7'] };
  for (const [k, v] of q) (query[k] ??= []).push(v);
  const ids: string[] = [];
  for (let page = 0; page < 100; page++) {
    const res = await engine.handle(ctx, { method: 'GET', path: type, query, headers: {} });
    const bundle = res.body as {
      entry?: { resource: { id: string } }[];
      link: { relation: string; url: string }[];
    };
    ids.push(...(bundle.entry ?? []).map((e) => e.resource.id));
    const next = bundle.link.find((l) => l.relation === 'next');
    if (!next) return ids;
    query = {};
    for (const [k, v] of new URL(next.url).searchParams) (query[k] ??= []).push(v);
  }
  throw new Error('too many pages');
}

describe('differential search harness', () => {
  it(`agrees with the independent evaluator on ${QUERIES} generated queries`, async () => {
    const disagreements: string[] = [];
    let nonEmpty = 0;
    for (let i = 0; i < QUERIES; i++) {
      const { type, query } = randomQuery();
      const got = await serverIds(type, query);
      // Pages come in id order, and are disjoint and complete.
      expect(got).toEqual([...got].sort());
      const expected = bruteForce(stored, type, query);
      if (expected.length > 0) nonEmpty++;
      if (JSON.stringify(got) !== JSON.stringify(expected)) {
        disagreements.push(
          `${type}?${new URLSearchParams(query).toString()} server=${got.length} oracle=${expected.length}`,
        );
      }
    }
    expect(disagreements).toEqual([]);
    // The generated queries are not trivially empty.
    expect(nonEmpty).toBeGreaterThan(QUERIES / 3);
    console.log(`differential: ${QUERIES} queries compared, ${nonEmpty} with non-empty results`);
  }, 300_000);
});
