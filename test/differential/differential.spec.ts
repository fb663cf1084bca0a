import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFhirEngine } from '../../apps/fhir-gateway/src/fhir/fhir-engine.factory.js';
import type { FhirEngine } from '../../apps/fhir-gateway/src/fhir/fhir-engine.js';
import { mulberry32 } from '../support/patient-generator.js';
import { openTestStorage, type TestStorage } from '../support/storage.js';
import { testContext } from '../support/test-context.js';
import { searchIds } from './independent-evaluator.js';

/**
 * Differential harness (issue #3): generated data full of the boundaries servers get wrong (date
 * precision, time zones near midnight, open periods, accents, several names, missing values, references
 * of several types, quantities at tricky precisions, negative and zero values, units, blood-pressure
 * components, organisation hierarchies, canonical urls), random queries over it, and the server's result
 * ids AND order (every page, through next links) compared with an independent brute-force evaluator.
 * Runs on PGlite and, in CI, on real Postgres.
 */
const QUERIES = Number(process.env.DIFF_QUERIES ?? 600);
let storage: TestStorage;
let engine: FhirEngine;
const ctx = testContext();
type Res = { resourceType: string; id: string } & Record<string, unknown>;
const stored: Res[] = [];
const rnd = mulberry32(20261125);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
/** A valid Period (R4 invariant per-1: start not after end): two picked endpoints, in order. */
function period(a: string, b: string): { start: string; end: string } {
  const at = (v: string) => Date.parse(v.length === 4 ? `${v}-01-01` : v.length === 7 ? `${v}-01` : v);
  return at(a) <= at(b) ? { start: a, end: b } : { start: b, end: a };
}
const chance = (p: number) => rnd() < p;
const of = (type: string) => stored.filter((r) => r.resourceType === type);

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
const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const CODES = [
  { system: LOINC, code: '8867-4', display: 'Heart rate' },
  { system: LOINC, code: '8310-5', display: 'Body température' },
  { system: 'http://snomed.info/sct', code: '8867-4' },
  { code: '8867-4' },
  { system: LOINC, code: '29463-7', display: 'Body weight' },
  { system: LOINC, code: '85354-9', display: 'Blood pressure panel' },
];
const CODE_TEXTS = ['Weight (lb)', 'Pulse', 'Température', 'body fat'];
/** Values at the edges of the implicit ranges the queries below use ("100" is [99.5, 100.5), …). */
const VALUES = [
  100, 100.4, 99.5, 100.5, 99.95, 100.05, 99.949, 0, -0.25, -0.3, -1, 0.5, 0.35, 0.25, 0.3, 150, 50, 49.99,
  110, 90, 95, 85.5, 104.5, 1000, 1e-7, 2.675, 1.15,
];
const UNITS = [
  { unit: 'kg', system: UCUM, code: 'kg' },
  { unit: 'lb', system: UCUM, code: '[lb_av]' },
  { unit: 'mmHg', system: UCUM, code: 'mm[Hg]' },
  { unit: '%' },
  { unit: 'kg', system: 'urn:other-units', code: 'kg' },
];
const Q_NUMBERS = [
  '100',
  '100.0',
  '100.00',
  '1e2',
  '1.0e2',
  '5e1',
  '99.5',
  '100.5',
  '0',
  '0.0',
  '0.3',
  '0.30',
  '0.35',
  '-0.25',
  '-0.3',
  '-1',
  '95',
  '91',
  '1000',
  '2.675',
  '1.15',
  '1e-7',
];
const Q_UNITS = [
  '',
  '',
  '',
  `|${UCUM}|kg`,
  '||kg',
  '||lb',
  '||[lb_av]',
  '||%',
  `|${UCUM}|mm[Hg]`,
  '|urn:x|kg',
];
const STRING_VALUES = ['Positive', 'positive result', 'Négatif', 'negative', 'Trace', 'POSITIVE'];
const ORG_NAMES = ['Acme Hôpital', 'Acme Clinic', 'Beta Klinik', 'Gamma Care', 'Östra Vård'];
const COND_CODES = [
  { system: 'http://snomed.info/sct', code: '38341003', display: 'Essential hypertension' },
  { system: 'http://snomed.info/sct', code: '44054006', display: 'Diabète de type 2' },
  { system: 'http://hl7.org/fhir/sid/icd-10', code: 'I10', display: 'Hypertension essentielle' },
  { system: 'http://hl7.org/fhir/sid/icd-10', code: 'E11' },
];
const COND_TEXTS = ['Essential hypertension', 'Type 2 diabetes', 'Hypertensive disorder', 'Diabète'];
const URLS = [
  'http://example.org/fhir/ValueSet',
  'http://example.org/fhir/ValueSet/colors',
  'http://example.org/fhir/ValueSet/colors/',
  'http://example.org/fhir/ValueSet/colors/warm',
  'http://example.org/fhir/ValueSetX',
  'http://example.org/fhir/ValueSet/sizes',
  'http://other.example/fhir/ValueSet/colors',
  'urn:oid:1.2.3',
];
const Q_URLS = [
  ...URLS,
  'http://example.org/fhir',
  'http://example.org/fhir/',
  'http://example.org/fhir/Value',
  'http://example.org/fhir/ValueSet/',
  'http://example.org/fhir/ValueSet/colors/warm/2',
  'http://example.org/fhir/ValueSet/sizes/s',
  'http://example.org',
];
const ID_TYPES = [
  {
    coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }],
    text: 'Medical record',
  },
  {
    coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'SS' }],
    text: 'Sécurité sociale',
  },
  { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR', display: 'Médical' }] },
];

async function create(body: Record<string, unknown>): Promise<Res> {
  const res = await engine.handle(ctx, {
    method: 'POST',
    path: body.resourceType as string,
    query: {},
    headers: {},
    body,
  });
  const r = JSON.parse((res.body as Buffer).toString('utf8')) as Res;
  stored.push(r);
  return r;
}

const quantity = () => ({ value: pick(VALUES), ...pick(UNITS) });

beforeAll(async () => {
  storage = await openTestStorage();
  engine = createFhirEngine(storage.store, 'http://h');
  // Organisations: two hierarchies (partOf) three and two levels deep, and one without a name.
  const o0 = await create({
    resourceType: 'Organization',
    name: ORG_NAMES[0],
    identifier: [{ system: 'urn:org', value: 'ACME' }],
  });
  const o1 = await create({
    resourceType: 'Organization',
    name: ORG_NAMES[1],
    partOf: { reference: `Organization/${o0.id}` },
  });
  await create({
    resourceType: 'Organization',
    name: ORG_NAMES[2],
    partOf: { reference: `Organization/${o1.id}` },
  });
  const o3 = await create({
    resourceType: 'Organization',
    name: ORG_NAMES[3],
    identifier: [{ system: 'urn:org', value: 'GAMMA' }],
  });
  await create({
    resourceType: 'Organization',
    name: ORG_NAMES[4],
    partOf: { reference: `Organization/${o3.id}` },
  });
  await create({
    resourceType: 'Organization',
    alias: ['Nameless'],
    partOf: { reference: `Organization/${o3.id}` },
  });
  const orgs = of('Organization');
  for (let i = 0; i < 36; i++) {
    const names = Array.from({ length: 1 + Math.floor(rnd() * 2) }, () => ({
      ...(chance(0.9) ? { family: pick(FAMILIES) } : {}),
      given: [pick(GIVEN)],
    }));
    const identifier = chance(0.7)
      ? { system: pick(['urn:mrn', 'urn:ssn']), value: `V${i % 7}` }
      : { value: `V${i % 7}` };
    await create({
      resourceType: 'Patient',
      name: names,
      ...(chance(0.8) ? { gender: pick(['male', 'female', 'other', 'unknown']) } : {}),
      ...(chance(0.85) ? { birthDate: pick(DATES) } : {}),
      identifier: [{ ...identifier, ...(chance(0.6) ? { type: pick(ID_TYPES) } : {}) }],
      ...(chance(0.5) ? { telecom: [{ system: 'phone', value: `555-01${i % 5}` }] } : {}),
      ...(chance(0.75) ? { managingOrganization: { reference: `Organization/${pick(orgs).id}` } } : {}),
    });
  }
  const patients = of('Patient');
  // Most results belong to a few patients, so that per-patient searches (which must name the patient)
  // have something to tell apart.
  const heavy = patients.slice(0, 5);
  const someone = () => (chance(0.65) ? pick(heavy) : pick(patients));
  const group = await create({ resourceType: 'Group', type: 'person', actual: true });
  for (let i = 0; i < 120; i++) {
    const patient = someone();
    const subject = chance(0.92)
      ? {
          reference: chance(0.05) ? `Patient/${patient.id}/_history/1` : `Patient/${patient.id}`,
          ...(chance(0.2)
            ? {
                identifier: {
                  system: 'urn:mrn',
                  value: (patient.identifier as { value: string }[])[0]!.value,
                },
              }
            : {}),
        }
      : pick([
          { reference: `Group/${group.id}` },
          { reference: `Group/${group.id}` },
          // No literal reference: subject and patient are missing (R4 search.html#modifiers).
          { display: 'Unidentified patient' },
          // A contained Patient: where(resolve() is Patient) keeps it, no Patient compartment holds it.
          { reference: '#p1' },
        ]);
    const when = chance(0.6)
      ? { effectiveDateTime: pick([...INSTANTS, ...DATES]) }
      : {
          effectivePeriod: chance(0.4)
            ? { start: pick(DATES) }
            : chance(0.5)
              ? { end: pick(INSTANTS) }
              : period(pick(DATES), pick(INSTANTS)),
        };
    const c = pick(CODES);
    const shape = rnd();
    const value =
      c.code === '85354-9' || shape < 0.15
        ? {
            component: [
              ...(chance(0.9)
                ? [
                    {
                      code: { coding: [{ system: LOINC, code: '8480-6' }] },
                      valueQuantity: {
                        value: pick([95, 120, 140, 140.5, 160]),
                        unit: 'mmHg',
                        system: UCUM,
                        code: 'mm[Hg]',
                      },
                    },
                  ]
                : []),
              {
                code: { coding: [{ system: LOINC, code: '8462-4' }] },
                valueQuantity: {
                  value: pick([60, 80, 90, 95, 140]),
                  unit: 'mmHg',
                  system: UCUM,
                  code: 'mm[Hg]',
                },
              },
            ],
          }
        : shape < 0.65
          ? { valueQuantity: quantity() }
          : shape < 0.75
            ? { valueString: pick(STRING_VALUES) }
            : shape < 0.8
              ? { valueCodeableConcept: { text: pick(STRING_VALUES) } }
              : shape < 0.83
                ? { valueQuantity: { unit: 'kg' } } // a quantity without a value
                : {};
    await create({
      resourceType: 'Observation',
      status: pick(['final', 'amended', 'preliminary']),
      code: {
        coding: [chance(0.6) ? c : { system: c.system, code: c.code }].map((x) =>
          Object.fromEntries(Object.entries(x).filter(([, v]) => v !== undefined)),
        ),
        ...(chance(0.25) ? { text: pick(CODE_TEXTS) } : {}),
      },
      subject,
      ...('reference' in subject && subject.reference === '#p1'
        ? { contained: [{ resourceType: 'Patient', id: 'p1', name: [{ family: 'Contained' }] }] }
        : {}),
      ...(chance(0.9) ? when : {}),
      ...value,
    });
  }
  for (let i = 0; i < 30; i++) {
    const c = pick(COND_CODES);
    const code = chance(0.15)
      ? undefined
      : chance(0.2)
        ? { text: pick(COND_TEXTS) }
        : { coding: [c], ...(chance(0.4) ? { text: pick(COND_TEXTS) } : {}) };
    await create({
      resourceType: 'Condition',
      subject: { reference: `Patient/${someone().id}` },
      ...(code ? { code } : {}),
      ...(chance(0.8)
        ? chance(0.7)
          ? { onsetDateTime: pick([...DATES, ...INSTANTS]) }
          : { onsetPeriod: period(pick(DATES), pick(INSTANTS)) }
        : {}),
    });
  }
  for (let i = 0; i < 16; i++) {
    const n = Math.floor(rnd() * 3);
    await create({
      resourceType: 'RiskAssessment',
      status: 'final',
      subject: { reference: `Patient/${pick(patients).id}` },
      ...(n > 0
        ? {
            prediction: Array.from({ length: n }, () => ({
              probabilityDecimal: pick([0.35, 0.3, 0.25, 0.5, 0, 1, 0.05, 0.349, 0.351, 0.15, 10, 99.5]),
            })),
          }
        : {}),
    });
  }
  for (const [i, url] of URLS.entries()) {
    await create({
      resourceType: 'ValueSet',
      status: 'active',
      url,
      name: `VS${i}`,
    });
    if (i % 2 === 0) await create({ resourceType: 'CodeSystem', status: 'active', content: 'complete', url });
  }
  await create({ resourceType: 'ValueSet', status: 'draft', name: 'NoUrl' });
}, 180_000);
afterAll(async () => storage.close());

/** One query: its clauses, the features it exercises, and how it is sent. */
interface Query {
  type: string;
  query: [string, string][];
  features: string[];
  compartment?: string;
  /** The same query without its patient pin must be refused (per-patient parameters). */
  unpinned?: [string, string][];
}
/**
 * Clauses marked `scoped` are on parameters indexed per patient (docs/ENCRYPTION.md "Per-patient keys":
 * Observation values and their composites, Condition.code): a search on one must name the patient, so the
 * generator adds a pin, and checks that the same clause without it is a 400.
 */
type Clause = { k: string; v: string; f: string; scoped?: boolean };

function randomQuery(): Query {
  const patients = of('Patient');
  const heavy = patients.slice(0, 5);
  const orgs = of('Organization');
  const datePrefix = () => pick(['', 'eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap']);
  const numPrefix = () => pick(['', '', 'eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap', 'ap']);
  const family = () => {
    const f = pick(FAMILIES);
    const cut = f.slice(0, 1 + Math.floor(rnd() * f.length));
    return chance(0.3) ? cut.toUpperCase() : cut;
  };
  const cut = (s: string) => s.slice(0, 1 + Math.floor(rnd() * s.length));
  const lastUpdated = () => {
    const lu = (pick(stored).meta as { lastUpdated: string }).lastUpdated;
    return `${pick(['', 'ge', 'le', 'gt', 'lt', 'ne'])}${chance(0.5) ? lu : `${lu.slice(0, 19)}Z`}`;
  };
  const qty = () => `${numPrefix()}${pick(Q_NUMBERS)}${pick(Q_UNITS)}`;
  const sort = (keys: string[]) => {
    const n = 1 + Math.floor(rnd() * 2);
    return Array.from({ length: n }, () => `${chance(0.5) ? '-' : ''}${pick(keys)}`).join(',');
  };

  const patientClauses: (() => Clause)[] = [
    () => ({ k: 'family', v: family(), f: 'string' }),
    () => ({ k: 'name', v: chance(0.5) ? family() : pick(GIVEN).slice(0, 2), f: 'string' }),
    () => ({ k: 'given', v: pick(GIVEN).toLowerCase().slice(0, 3), f: 'string' }),
    () => ({ k: 'family:exact', v: pick(FAMILIES), f: ':exact' }),
    () => ({ k: 'name:contains', v: pick(['ll', 'ER', 'ö', 'an', 'der b']), f: ':contains' }),
    () => ({
      k: 'gender',
      v: chance(0.3) ? 'male,female' : pick(['male', 'female', 'other', 'unknown']),
      f: 'token',
    }),
    () => ({
      k: 'gender:not',
      v: chance(0.3) ? 'male,female' : pick(['male', 'female', 'other']),
      f: ':not',
    }),
    () => ({ k: 'identifier', v: pick(['urn:mrn|V1', 'V2', 'urn:ssn|', '|V3', 'urn:mrn|V9']), f: 'token' }),
    () => ({
      k: 'identifier:of-type',
      v: `http://terminology.hl7.org/CodeSystem/v2-0203|${pick(['MR', 'SS', 'XX'])}|V${Math.floor(rnd() * 7)}`,
      f: ':of-type',
    }),
    () => ({
      k: 'identifier:text',
      v: cut(pick(['medical record', 'Securite', 'médical', 'SÉCU'])),
      f: ':text',
    }),
    () => ({ k: 'birthdate', v: `${datePrefix()}${pick(DATES)}`, f: 'date' }),
    () => ({
      k: `${pick(['birthdate', 'gender', 'family', 'organization', 'telecom'])}:missing`,
      v: pick(['true', 'false']),
      f: ':missing',
    }),
    () => ({ k: 'telecom', v: `555-01${Math.floor(rnd() * 6)}`, f: 'token' }),
    () => ({ k: '_id', v: `${pick(patients).id},${pick(patients).id}`, f: '_id' }),
    () => ({ k: '_lastUpdated', v: lastUpdated(), f: '_lastUpdated' }),
    () => ({
      k: 'organization',
      v: chance(0.5) ? `Organization/${pick(orgs).id}` : pick(orgs).id,
      f: 'reference',
    }),
    () => ({ k: 'organization:Organization', v: pick(orgs).id, f: ':[Type]' }),
    () => ({ k: 'organization.name', v: cut(pick(ORG_NAMES)), f: 'chain' }),
    () => ({ k: 'organization.partof.name', v: cut(pick(ORG_NAMES)), f: 'chain-2' }),
    () => ({
      k: 'organization:Organization.partof.identifier',
      v: pick(['urn:org|ACME', 'GAMMA']),
      f: 'chain-2',
    }),
    () => ({ k: '_has:Observation:subject:code', v: pick(CODES).code, f: '_has' }),
    () => ({ k: '_has:Observation:patient:date', v: `${datePrefix()}${pick(DATES)}`, f: '_has' }),
    () => ({
      k: '_has:RiskAssessment:subject:probability',
      v: `${numPrefix()}${pick(['0.3', '0.35', '0.5', '1e0'])}`,
      f: '_has',
    }),
    () => ({ k: '_has:Condition:subject:onset-date', v: `${datePrefix()}${pick(DATES)}`, f: '_has' }),
  ];
  const patientSorts = [
    'family',
    'given',
    'name',
    'birthdate',
    'gender',
    '_id',
    '_lastUpdated',
    'identifier',
    'organization',
    'telecom',
  ];

  const obsClauses: (() => Clause)[] = [
    () => {
      const c = pick(CODES);
      return { k: 'code', v: chance(0.5) && c.system ? `${c.system}|${c.code}` : c.code, f: 'token' };
    },
    () => ({
      k: 'code:text',
      v: cut(pick(['Body weight', 'body', 'Heart', 'temperature', 'Blood pressure', 'weight', 'pulse'])),
      f: ':text',
    }),
    () => ({ k: 'code:not', v: pick(CODES).code, f: ':not' }),
    () => ({ k: 'status:not', v: chance(0.3) ? 'final,amended' : pick(['final', 'amended']), f: ':not' }),
    () => ({ k: 'subject', v: `Patient/${pick(patients).id}`, f: 'reference' }),
    () => ({ k: 'patient', v: pick(patients).id, f: 'reference' }),
    () => ({ k: 'subject:Patient', v: pick(heavy).id, f: ':[Type]' }),
    () => ({
      k: 'subject:identifier',
      v: `${chance(0.5) ? 'urn:mrn|' : ''}V${Math.floor(rnd() * 7)}`,
      f: ':identifier',
    }),
    () => ({ k: 'subject:Patient.name', v: family(), f: 'chain' }),
    () => ({ k: 'subject:Patient.organization.name', v: cut(pick(ORG_NAMES)), f: 'chain-2' }),
    () => ({ k: 'subject.organization.partof.name', v: cut(pick(ORG_NAMES)), f: 'chain-3' }),
    () => ({ k: 'date', v: `${datePrefix()}${pick([...DATES, ...INSTANTS])}`, f: 'date' }),
    () => ({ k: 'date', v: `ap${pick([...DATES, ...INSTANTS])}`, f: 'date-ap' }),
    () => ({
      k: 'status',
      v: chance(0.3) ? 'final,amended' : pick(['final', 'amended', 'preliminary']),
      f: 'token',
    }),
    () => ({ k: 'date:missing', v: pick(['true', 'false']), f: ':missing' }),
    () => ({
      k: 'value-quantity',
      v: chance(0.2) ? `${qty()},${qty()}` : qty(),
      f: 'quantity',
      scoped: true,
    }),
    () => ({ k: 'component-value-quantity', v: qty(), f: 'quantity', scoped: true }),
    () => ({ k: 'combo-value-quantity', v: qty(), f: 'quantity', scoped: true }),
    () => ({ k: 'value-quantity:missing', v: pick(['true', 'false']), f: ':missing', scoped: true }),
    () => ({ k: 'value-string', v: cut(pick(STRING_VALUES)).toLowerCase(), f: 'string', scoped: true }),
    () => ({ k: 'value-string:exact', v: pick(STRING_VALUES), f: ':exact', scoped: true }),
    () => ({
      k: 'value-string:contains',
      v: pick(['tiv', 'SIT', 'gat', 'é', 'race']),
      f: ':contains',
      scoped: true,
    }),
    () => ({
      k: 'component-code-value-quantity',
      v: `${LOINC}|${pick(['8480-6', '8462-4'])}$${numPrefix()}${pick(['140', '95', '90', '1.4e2', '80'])}`,
      f: 'composite',
      scoped: true,
    }),
    () => ({
      k: pick(['code-value-quantity', 'combo-code-value-quantity']),
      v: `${pick([`${LOINC}|29463-7`, '8867-4', `${LOINC}|8480-6`])}$${qty()}`,
      f: 'composite',
      scoped: true,
    }),
    () => ({
      k: 'component-code-value-quantity:missing',
      v: pick(['true', 'false']),
      f: ':missing',
      scoped: true,
    }),
  ];
  // 'date' includes Periods open at either end: the missing side sorts as open, as date matching reads it.
  const obsSorts = ['code', 'status', 'date', '_lastUpdated', 'subject', 'value-quantity', 'value-string'];
  const obsPins: (() => Clause)[] = [
    () => ({
      k: 'subject',
      v: heavy
        .slice(0, 2 + Math.floor(rnd() * 4))
        .map((p) => `Patient/${p.id}`)
        .join(','),
      f: 'pin',
    }),
    () => ({ k: 'patient', v: pick(heavy).id, f: 'pin' }),
    () => ({ k: 'subject:Patient.gender', v: pick(['female', 'male,other']), f: 'pin-chain' }),
  ];

  const condClauses: (() => Clause)[] = [
    () => {
      const c = pick(COND_CODES);
      return { k: 'code', v: chance(0.5) ? `${c.system}|${c.code}` : c.code, f: 'token', scoped: true };
    },
    () => ({
      k: 'code:text',
      v: cut(pick([...COND_TEXTS, 'hypertension', 'DIABETE'])),
      f: ':text',
      scoped: true,
    }),
    () => ({ k: 'code:not', v: pick(COND_CODES).code, f: ':not', scoped: true }),
    () => ({ k: 'code:missing', v: pick(['true', 'false']), f: ':missing', scoped: true }),
    () => ({ k: 'onset-date', v: `${datePrefix()}${pick([...DATES, ...INSTANTS])}`, f: 'date' }),
    () => ({ k: 'subject:Patient.gender', v: pick(['female', 'male']), f: 'chain' }),
    () => ({ k: 'subject', v: `Patient/${pick(heavy).id}`, f: 'reference' }),
  ];
  const condPins: (() => Clause)[] = [
    () => ({
      k: 'patient',
      v: heavy
        .slice(0, 2 + Math.floor(rnd() * 3))
        .map((p) => p.id)
        .join(','),
      f: 'pin',
    }),
    () => ({ k: 'subject', v: `Patient/${pick(heavy).id}`, f: 'pin' }),
    () => ({
      k: 'subject:Patient.birthdate',
      v: pick(['ge1970', 'ne2000', 'le2000-02-29']),
      f: 'pin-chain',
    }),
  ];

  const orgClauses: (() => Clause)[] = [
    () => ({ k: 'name', v: cut(pick(ORG_NAMES)), f: 'string' }),
    () => ({ k: 'name:exact', v: pick([...ORG_NAMES, 'acme clinic']), f: ':exact' }),
    () => ({ k: 'partof', v: `Organization/${pick(orgs).id}`, f: 'reference' }),
    () => ({ k: 'partof:missing', v: pick(['true', 'false']), f: ':missing' }),
    () => ({ k: 'partof.name', v: cut(pick(ORG_NAMES)), f: 'chain' }),
    () => ({ k: 'partof.partof.identifier', v: 'urn:org|ACME', f: 'chain-2' }),
    () => ({ k: '_has:Patient:organization:gender', v: pick(['female', 'male']), f: '_has' }),
    () => ({
      k: '_has:Patient:organization:_has:Observation:subject:code',
      v: pick(CODES).code,
      f: '_has-nested',
    }),
    () => ({ k: 'identifier', v: pick(['urn:org|ACME', 'GAMMA']), f: 'token' }),
  ];
  const riskClauses: (() => Clause)[] = [
    () => ({
      k: 'probability',
      v: `${numPrefix()}${pick(['0.35', '0.3', '0.30', '0.5', '0', '1', '1e0', '5e-2', '0.349', '10', '1e2', '99.5'])}`,
      f: 'number',
    }),
    () => ({ k: 'probability:missing', v: pick(['true', 'false']), f: ':missing' }),
    () => ({ k: 'subject:Patient.gender', v: pick(['female', 'male']), f: 'chain' }),
  ];
  const uriClauses: (() => Clause)[] = [
    () => ({ k: 'url', v: pick(Q_URLS), f: 'uri' }),
    () => ({ k: 'url:below', v: pick(Q_URLS), f: ':below' }),
    () => ({ k: 'url:above', v: pick(Q_URLS), f: ':above' }),
    () => ({ k: 'url:missing', v: pick(['true', 'false']), f: ':missing' }),
  ];

  const kind = rnd();
  let type: string;
  let clauses: (() => Clause)[];
  let sorts: string[];
  let pins: (() => Clause)[] = [];
  let compartment: string | undefined;
  if (kind < 0.3) [type, clauses, sorts] = ['Patient', patientClauses, patientSorts];
  else if (kind < 0.65) [type, clauses, sorts, pins] = ['Observation', obsClauses, obsSorts, obsPins];
  else if (kind < 0.73) {
    [type, clauses, sorts] = ['Observation', obsClauses, obsSorts];
    compartment = pick(chance(0.7) ? heavy : patients).id;
  } else if (kind < 0.83)
    [type, clauses, sorts, pins] = ['Condition', condClauses, ['onset-date', 'code', '_id'], condPins];
  else if (kind < 0.9) [type, clauses, sorts] = ['Organization', orgClauses, ['name', 'partof', '_id']];
  else if (kind < 0.94)
    [type, clauses, sorts] = ['RiskAssessment', riskClauses, ['probability', '_lastUpdated']];
  else [type, clauses, sorts] = [pick(['ValueSet', 'CodeSystem']), uriClauses, ['url', '_id']];

  const picked = Array.from({ length: 1 + Math.floor(rnd() * 2) }, () => pick(clauses)());
  const features = picked.map((c) => c.f);
  const query: [string, string][] = picked.map((c) => [c.k, c.v]);
  let unpinned: [string, string][] | undefined;
  const scoped = picked.find((c) => c.scoped);
  if (scoped && !compartment) {
    const pin = pick(pins)();
    query.push([pin.k, pin.v]);
    features.push(pin.f);
    // Without the pin, the per-patient parameter alone must be refused, whatever its form (also "ne",
    // :contains and :missing, which the index does not narrow). A :contains alone is refused anyway.
    if (chance(0.3)) unpinned = [[scoped.k, scoped.v]];
  }
  if (compartment) features.push('compartment');
  // In a compartment, :contains needs nothing more: the compartment bounds the scan.
  // :contains only filters what another parameter selects: give it _id (every resource of the type).
  if (picked.some((c) => c.k === 'name:contains'))
    query.push([
      '_id',
      of(type)
        .map((r) => r.id)
        .join(','),
    ]);
  if (chance(0.3)) {
    query.push(['_sort', sort(sorts)]);
    features.push('_sort');
  }
  return {
    type,
    query,
    features,
    ...(compartment ? { compartment } : {}),
    ...(unpinned ? { unpinned } : {}),
  };
}

type Bundle = { entry?: { resource: { id: string } }[]; link: { relation: string; url: string }[] };
const queryOf = (q: [string, string][]) => {
  const query: Record<string, string[]> = {};
  for (const [k, v] of q) (query[k] ??= []).push(v);
  return query;
};
const idsOf = (b: Bundle) => (b.entry ?? []).map((e) => e.resource.id);

/** Every page through next links; with two pages or more, the last page's previous link is followed too. */
async function serverPages(
  path: string,
  q: [string, string][],
  count: number,
): Promise<{ pages: string[][]; previous?: string[] }> {
  let query = queryOf([...q, ['_count', String(count)]]);
  const pages: string[][] = [];
  let last: Bundle | undefined;
  for (let page = 0; page < 200; page++) {
    const res = await engine.handle(ctx, { method: 'GET', path, query, headers: {} });
    last = res.body as Bundle;
    pages.push(idsOf(last));
    const next = last.link.find((l) => l.relation === 'next');
    if (!next) break;
    query = queryOf([...new URL(next.url).searchParams]);
  }
  const prev = pages.length >= 2 ? last!.link.find((l) => l.relation === 'previous') : undefined;
  if (!prev) return { pages };
  const res = await engine.handle(ctx, {
    method: 'GET',
    path,
    query: queryOf([...new URL(prev.url).searchParams]),
    headers: {},
  });
  return { pages, previous: idsOf(res.body as Bundle) };
}

/** Where the server's list and the evaluator's part: the first difference, with the resources involved. */
function explain(got: string[], expected: string[]): string {
  const show = (id: string | undefined) => {
    const r = stored.find((x) => x.id === id);
    if (!r) return String(id);
    const { meta: _meta, resourceType: _type, ...rest } = r;
    return JSON.stringify(rest);
  };
  const extra = got.filter((id) => !expected.includes(id));
  const missing = expected.filter((id) => !got.includes(id));
  if (extra.length || missing.length)
    return `server ${got.length}, oracle ${expected.length}; only server: ${extra.map(show).join(' ')}; only oracle: ${missing.map(show).join(' ')}`;
  const i = got.findIndex((id, k) => id !== expected[k]);
  return `order differs at ${i} of ${got.length}: server ${show(got[i])}, oracle ${show(expected[i])}`;
}

async function statusOf(path: string, q: [string, string][]): Promise<number> {
  try {
    await engine.handle(ctx, { method: 'GET', path, query: queryOf(q), headers: {} });
    return 200;
  } catch (err) {
    return (err as { status?: number }).status ?? 500;
  }
}

describe('differential search harness', () => {
  it(`agrees with the independent evaluator on ${QUERIES} generated queries`, async () => {
    const disagreements: string[] = [];
    const counts = new Map<string, number>();
    const count = (f: string) => counts.set(f, (counts.get(f) ?? 0) + 1);
    let nonEmpty = 0;
    let refusals = 0;
    for (let i = 0; i < QUERIES; i++) {
      const { type, query, features, compartment, unpinned } = randomQuery();
      const path = compartment ? `Patient/${compartment}/${type}` : type;
      const describeQuery = () => `${path}?${new URLSearchParams(query).toString()}`;
      const sorted = query.some(([k]) => k === '_sort');
      let got: { pages: string[][]; previous?: string[] };
      try {
        got = await serverPages(path, query, pick([3, 7, 50]));
      } catch (err) {
        disagreements.push(
          `${describeQuery()} server error ${String((err as { status?: number }).status ?? err)} ${(err as { outcome?: { issue?: { diagnostics?: string }[] } }).outcome?.issue?.[0]?.diagnostics ?? ''}`,
        );
        continue;
      }
      const ids = got.pages.flat();
      // Pages are disjoint, and without _sort they come in id order.
      expect(new Set(ids).size, describeQuery()).toBe(ids.length);
      if (!sorted) expect(ids, describeQuery()).toEqual([...ids].sort());
      if (got.previous) {
        expect(got.previous, `previous link of ${describeQuery()}`).toEqual(got.pages[got.pages.length - 2]);
        count('previous-link');
      }
      if (got.pages.length > 1) count('paging');
      const expected = searchIds(
        stored,
        type,
        query,
        compartment ? { compartment: { type: 'Patient', id: compartment } } : {},
      );
      if (expected.length > 0) nonEmpty++;
      if (JSON.stringify(ids) !== JSON.stringify(expected))
        disagreements.push(`${describeQuery()} ${explain(ids, expected)}`);
      for (const f of new Set(features)) count(f);
      count('all');
      if (unpinned) {
        const status = await statusOf(type, unpinned);
        if (status !== 400)
          disagreements.push(
            `${type}?${new URLSearchParams(unpinned).toString()} without a patient: ${status}, not 400`,
          );
        refusals++;
        count('per-patient 400 without pin');
      }
    }
    // :contains alone cannot use the index and is refused (docs/ENCRYPTION.md).
    for (const [type, q] of [
      ['Patient', [['family:contains', 'll']]],
      [
        'Observation',
        [
          ['value-string:contains', 'tiv'],
          ['patient', 'x'],
        ],
      ], // patient pin alone is selective
    ] as [string, [string, string][]][]) {
      const status = await statusOf(type, q);
      if (type === 'Patient') expect(status).toBe(400);
      else expect(status).toBe(200);
      count(':contains 400 alone');
    }
    const summary = [...counts]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([f, n]) => `${f}=${n}`)
      .join(' ');
    console.log(
      `differential: ${QUERIES} queries, ${nonEmpty} with non-empty results, ${refusals} unpinned refusals checked; ${summary}`,
    );
    expect(disagreements).toEqual([]);
    // The generated queries are not trivially empty.
    expect(nonEmpty).toBeGreaterThan(QUERIES / 3);
  }, 300_000);
});
