import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestStorage, type TestStorage } from '../../../../test/support/storage.js';
import { testContext } from '../../../../test/support/test-context.js';
import { createFhirEngine } from '../fhir/fhir-engine.factory.js';
import type { FhirEngine } from '../fhir/fhir-engine.js';

let storage: TestStorage;
let engine: FhirEngine;
const ctx = testContext();
const ids: Record<string, string> = {};

async function create(body: object): Promise<string> {
  const res = await engine.handle(ctx, {
    method: 'POST',
    path: (body as { resourceType: string }).resourceType,
    query: {},
    headers: {},
    body,
  });
  return JSON.parse((res.body as Buffer).toString()).id as string;
}

async function search(type: string, qs: string, prefer?: string): Promise<{ ids: string[]; bundle: any }> {
  const query: Record<string, string[]> = {};
  for (const [k, v] of new URLSearchParams(qs)) (query[k] ??= []).push(v);
  const res = await engine.handle(ctx, { method: 'GET', path: type, query, headers: { prefer } });
  const bundle = res.body as any;
  return { ids: (bundle.entry ?? []).map((e: any) => e.resource.id).sort(), bundle };
}

const sorted = (...names: string[]) => names.map((n) => ids[n]!).sort();

beforeAll(async () => {
  storage = await openTestStorage();
  engine = createFhirEngine(storage.store, 'http://h');
  ids.ada = await create({
    resourceType: 'Patient',
    name: [{ family: 'Lovelace', given: ['Ada'] }],
    birthDate: '1815-12-10',
    gender: 'female',
    identifier: [{ system: 'urn:mrn', value: 'A1' }],
  });
  ids.zoe = await create({
    resourceType: 'Patient',
    name: [{ family: 'Zoë', given: ['Éloïse'] }],
    birthDate: '1990-06',
    gender: 'female',
    identifier: [{ system: 'urn:mrn', value: 'Z9' }],
  });
  ids.bob = await create({
    resourceType: 'Patient',
    name: [{ family: 'Lovejoy' }],
    birthDate: '1990-06-15',
    gender: 'male',
    telecom: [{ system: 'phone', value: '555-0100' }],
  });
  ids.obs1 = await create({
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
    subject: { reference: `Patient/${ids.ada}` },
    effectiveDateTime: '2020-03-01T10:00:00Z',
  });
  ids.obs2 = await create({
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8310-5' }] },
    subject: { reference: `Patient/${ids.bob}` },
    effectivePeriod: { start: '2021-01-01', end: '2021-02-01' },
  });
});
afterAll(async () => storage.close());

describe('search over blind indexes', () => {
  it('string: case- and accent-insensitive starts-with, and :exact', async () => {
    expect((await search('Patient', 'family=love')).ids).toEqual(sorted('ada', 'bob'));
    expect((await search('Patient', 'name=ELO')).ids).toEqual(sorted('zoe'));
    expect((await search('Patient', 'family=zoe')).ids).toEqual(sorted('zoe'));
    expect((await search('Patient', 'family:exact=Zoë')).ids).toEqual(sorted('zoe'));
    expect((await search('Patient', 'family:exact=zoë')).ids).toEqual([]);
  });

  it('token: code, system|code, |code, system|, OR and AND', async () => {
    expect((await search('Patient', 'gender=female')).ids).toEqual(sorted('ada', 'zoe'));
    expect((await search('Patient', 'identifier=urn:mrn|Z9')).ids).toEqual(sorted('zoe'));
    expect((await search('Patient', 'identifier=urn:mrn|')).ids).toEqual(sorted('ada', 'zoe'));
    expect((await search('Patient', 'identifier=other|Z9')).ids).toEqual([]);
    expect((await search('Patient', 'telecom=555-0100')).ids).toEqual(sorted('bob'));
    expect((await search('Patient', 'gender=male,female&family=love')).ids).toEqual(sorted('ada', 'bob'));
    expect((await search('Observation', 'code=http://loinc.org|8867-4')).ids).toEqual(sorted('obs1'));
  });

  it('reference and _id', async () => {
    expect((await search('Observation', `subject=Patient/${ids.bob}`)).ids).toEqual(sorted('obs2'));
    expect((await search('Observation', `subject:Patient=${ids.ada}`)).ids).toEqual(sorted('obs1'));
    expect((await search('Observation', `patient=${ids.ada}`)).ids).toEqual(sorted('obs1'));
    expect((await search('Patient', `_id=${ids.ada},${ids.bob}`)).ids).toEqual(sorted('ada', 'bob'));
  });

  it('date: precision and prefixes', async () => {
    expect((await search('Patient', 'birthdate=1990')).ids).toEqual(sorted('zoe', 'bob'));
    expect((await search('Patient', 'birthdate=1990-06-15')).ids).toEqual(sorted('bob'));
    expect((await search('Patient', 'birthdate=lt1900')).ids).toEqual(sorted('ada'));
    expect((await search('Patient', 'birthdate=ge1990-06-10')).ids).toContain(ids.bob);
    expect((await search('Observation', 'date=2021-01-15')).ids).toEqual([]);
    expect((await search('Observation', 'date=gt2021-01-15')).ids).toEqual(sorted('obs2'));
    expect((await search('Observation', 'date=ge2020-01-01&date=lt2020-12-31')).ids).toEqual(sorted('obs1'));
    expect((await search('Observation', 'date=ne2020-03-01')).ids).toEqual(sorted('obs2'));
  });

  it('pages with a cursor, counts, and handles unknown parameters', async () => {
    const first = await search('Patient', '_count=2&_total=accurate');
    expect(first.bundle.total).toBe(3);
    expect(first.ids).toHaveLength(2);
    const next = new URL(first.bundle.link.find((l: any) => l.relation === 'next').url);
    const rest = await search('Patient', next.search.slice(1));
    expect([...first.ids, ...rest.ids].sort()).toEqual(sorted('ada', 'zoe', 'bob'));
    expect(rest.bundle.link.find((l: any) => l.relation === 'next')).toBeUndefined();
    expect((await search('Patient', '_summary=count&gender=female')).bundle.total).toBe(2);
    expect((await search('Patient', 'nonsense=1&gender=male')).ids).toEqual(sorted('bob'));
    await expect(search('Patient', 'nonsense=1', 'handling=strict')).rejects.toMatchObject({ status: 400 });
    await expect(search('Patient', 'birthdate=1990-13')).rejects.toMatchObject({ status: 400 });
  });

  it('stores no plaintext tokens', async () => {
    const { rows } = await storage.db.query<{ t: string; n: number }>(
      `SELECT string_agg(search_tokens::text, ' ') AS t, sum(cardinality(search_tokens))::int AS n FROM resource`,
    );
    // Tokens are 64-bit integers (truncated HMACs): nothing but digits and signs, and plenty of them.
    expect(rows[0]!.n).toBeGreaterThan(50);
    expect(rows[0]!.t).toMatch(/^[-0-9,{} ]+$/);
  });
});

describe('search parameter expressions', () => {
  it('keep only the branches of the searched type', async () => {
    const { forType } = await import('./search-params.js');
    expect(forType('Patient.address | Person.address | Practitioner.address', 'Patient')).toBe(
      'Patient.address',
    );
    expect(
      forType('AllergyIntolerance.patient | CarePlan.subject.where(resolve() is Patient)', 'CarePlan'),
    ).toBe('CarePlan.subject.where(resolve() is Patient)');
    // Nothing to narrow: the expression stays whole.
    expect(
      forType('(Observation.value as Quantity) | (Observation.value as SampledData)', 'Observation'),
    ).toBe('(Observation.value as Quantity) | (Observation.value as SampledData)');
  });

  it('refuses phonetic search rather than answering it wrongly', async () => {
    await expect(search('Patient', 'phonetic=lovlace')).rejects.toMatchObject({ status: 501 });
  });
});

describe('_include and _revinclude', () => {
  it('adds referenced and referencing resources once, marked include', async () => {
    const inc = await search('Observation', `code=http://loinc.org|8867-4&_include=Observation:subject`);
    const modes = inc.bundle.entry.map(
      (e: any) => `${e.search.mode}:${e.resource.resourceType}/${e.resource.id}`,
    );
    expect(modes).toEqual([`match:Observation/${ids.obs1}`, `include:Patient/${ids.ada}`]);

    const rev = await search('Patient', `_id=${ids.ada},${ids.bob}&_revinclude=Observation:subject`);
    const included = rev.bundle.entry
      .filter((e: any) => e.search.mode === 'include')
      .map((e: any) => e.resource.id)
      .sort();
    expect(included).toEqual(sorted('obs1', 'obs2'));
    const typed = await search('Patient', `_id=${ids.ada}&_revinclude=Observation:subject:Group`);
    expect(typed.bundle.entry.filter((e: any) => e.search.mode === 'include')).toEqual([]);
  });

  it('rejects malformed includes', async () => {
    await expect(search('Observation', '_include=Observation:code')).rejects.toMatchObject({ status: 400 });
    await expect(search('Observation', '_include=Patient:organization')).rejects.toMatchObject({
      status: 400,
    });
    await expect(search('Observation', '_include:recurse=Observation:subject')).rejects.toMatchObject({
      status: 400,
    });
    await expect(search('Patient', '_revinclude=*')).rejects.toMatchObject({ status: 400 });
  });
});

describe('reference forms', () => {
  it('treats versioned references as local and absolute URLs as external, consistently', async () => {
    const versioned = await create({
      resourceType: 'Observation',
      status: 'final',
      code: { text: 'v' },
      subject: { reference: `Patient/${ids.zoe}/_history/1` },
    });
    const external = await create({
      resourceType: 'Observation',
      status: 'final',
      code: { text: 'e' },
      subject: { reference: `https://elsewhere.example/fhir/Patient/${ids.zoe}` },
    });
    expect((await search('Observation', `subject=Patient/${ids.zoe}`)).ids).toEqual([versioned]);
    expect(
      (await search('Observation', `subject=https://elsewhere.example/fhir/Patient/${ids.zoe}`)).ids,
    ).toEqual([external]);
    const inc = await search('Observation', `_id=${versioned}&_include=Observation:subject`);
    expect(inc.bundle.entry.map((e: any) => e.search.mode)).toEqual(['match', 'include']);
  });
});
