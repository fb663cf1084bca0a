import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openTestStorage, type TestStorage } from '../../../../test/support/storage.js';
import { testContext } from '../../../../test/support/test-context.js';
import { createFhirEngine } from '../fhir/fhir-engine.factory.js';
import type { FhirEngine } from '../fhir/fhir-engine.js';
import { SearchIndex } from './search-index.js';
import { SearchService } from './search.service.js';
import { ResourceRepository, tokenToInt64 } from '../store/resource.repository.js';

/**
 * Search semantics beyond the first increment (R4 search.html): number and quantity prefixes with implicit
 * precision, composites, every modifier, chains, _has, _sort with sealed cursors, previous links,
 * _include:iterate and *, resource-level parameters and compartment search.
 */
let storage: TestStorage;
let engine: FhirEngine;
let searches: SearchService;
const ctx = testContext();
const ids: Record<string, string> = {};

async function create(name: string, body: object): Promise<string> {
  const res = await engine.handle(ctx, {
    method: 'POST',
    path: (body as { resourceType: string }).resourceType,
    query: {},
    headers: {},
    body,
  });
  const id = JSON.parse((res.body as Buffer).toString()).id as string;
  ids[name] = id;
  return id;
}

function toQuery(qs: string): Record<string, string[]> {
  const query: Record<string, string[]> = {};
  for (const [k, v] of new URLSearchParams(qs)) (query[k] ??= []).push(v);
  return query;
}

async function search(type: string, qs: string): Promise<{ names: string[]; bundle: any }> {
  const res = await engine.handle(ctx, { method: 'GET', path: type, query: toQuery(qs), headers: {} });
  const bundle = res.body as any;
  return { names: namesOf(bundle, 'match'), bundle };
}

function namesOf(bundle: any, mode: string): string[] {
  const byId = new Map(Object.entries(ids).map(([k, v]) => [v, k]));
  return (bundle.entry ?? [])
    .filter((e: any) => e.search?.mode === mode)
    .map((e: any) => byId.get(e.resource.id) ?? `?${e.resource.id}`);
}

const set = async (type: string, qs: string) => (await search(type, qs)).names.sort();

/** Ids of every page of a search, forward through its next links, then back through its previous links. */
async function walkBothWays(type: string, qs: string): Promise<{ forward: string[]; back: string[] }> {
  const idsOf = (b: any): string[] => (b.entry ?? []).map((e: any) => e.resource.id);
  const forward: string[] = [];
  let last: any;
  for (let q: string | undefined = qs; q !== undefined;) {
    const { bundle } = await search(type, q);
    last = bundle;
    forward.push(...idsOf(bundle));
    const next = bundle.link.find((l: any) => l.relation === 'next');
    q = next ? new URL(next.url).search.slice(1) : undefined;
  }
  const back = idsOf(last);
  for (let prev = last.link.find((l: any) => l.relation === 'previous'); prev;) {
    const { bundle } = await search(type, new URL(prev.url).search.slice(1));
    back.unshift(...idsOf(bundle));
    prev = bundle.link.find((l: any) => l.relation === 'previous');
  }
  return { forward, back };
}

/** Values of observations are indexed per patient (patient-scope.ts): these searches name both patients. */
const both = () => `Patient/${ids.ann},Patient/${ids.ben}`;

function bp(systolic: number, diastolic: number) {
  const q = (v: number) => ({ value: v, unit: 'mmHg', system: 'http://unitsofmeasure.org', code: 'mm[Hg]' });
  return [
    { code: { coding: [{ system: 'http://loinc.org', code: '8480-6' }] }, valueQuantity: q(systolic) },
    { code: { coding: [{ system: 'http://loinc.org', code: '8462-4' }] }, valueQuantity: q(diastolic) },
  ];
}

beforeAll(async () => {
  storage = await openTestStorage();
  engine = createFhirEngine(storage.store, 'http://h');
  searches = new SearchService(storage.store, new SearchIndex(storage.store.keys), 'http://h/fhir');
  await create('acme', {
    resourceType: 'Organization',
    name: 'Acme Hospital',
    identifier: [{ system: 'urn:org', value: 'ACME' }],
  });
  await create('beta', {
    resourceType: 'Organization',
    name: 'Beta Clinic',
    partOf: { reference: `Organization/${ids.acme}` },
  });
  await create('ann', {
    resourceType: 'Patient',
    meta: {
      tag: [{ system: 'urn:tags', code: 'vip' }],
      profile: ['http://example.org/fhir/StructureDefinition/p1'],
    },
    name: [{ family: 'Andersson', given: ['Ann'] }],
    gender: 'female',
    birthDate: '1980-05-01',
    managingOrganization: { reference: `Organization/${ids.beta}` },
    identifier: [
      {
        system: 'urn:mrn',
        value: 'M-1',
        type: {
          coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }],
          text: 'Medical record',
        },
      },
    ],
  });
  await create('ben', {
    resourceType: 'Patient',
    name: [{ family: 'Berg', given: ['Ben'] }],
    gender: 'male',
    managingOrganization: { reference: `Organization/${ids.acme}` },
    identifier: [
      {
        system: 'urn:ssn',
        value: 'M-1',
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'SS' }] },
      },
    ],
  });
  await create('cy', { resourceType: 'Patient', name: [{ family: 'Carlsson' }] });
  const obs = (subject: string, extra: object) => ({
    resourceType: 'Observation',
    status: 'final',
    subject: { reference: `Patient/${ids[subject]}` },
    ...extra,
  });
  await create(
    'w100',
    obs('ann', {
      code: { coding: [{ system: 'http://loinc.org', code: '29463-7', display: 'Body weight' }] },
      valueQuantity: { value: 100, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' },
      effectiveDateTime: '2020-01-10',
    }),
  );
  await create(
    'w99_6',
    obs('ann', {
      code: { coding: [{ system: 'http://loinc.org', code: '29463-7', display: 'Body weight' }] },
      valueQuantity: { value: 99.6, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' },
      effectiveDateTime: '2021-03-04',
    }),
  );
  await create(
    'w100lb',
    obs('ben', {
      code: { coding: [{ system: 'http://loinc.org', code: '29463-7' }], text: 'Weight (lb)' },
      valueQuantity: { value: 100.4, unit: 'lb', system: 'http://unitsofmeasure.org', code: '[lb_av]' },
      effectiveDateTime: '2022-07-01',
    }),
  );
  await create(
    'neg',
    obs('ben', {
      code: { coding: [{ system: 'urn:test', code: 'delta' }] },
      valueQuantity: { value: -0.25, unit: 'x' },
    }),
  );
  await create(
    'bpHigh',
    obs('ann', {
      code: { coding: [{ system: 'http://loinc.org', code: '85354-9', display: 'Blood pressure panel' }] },
      component: bp(150, 95),
      effectiveDateTime: '2021-03-04',
    }),
  );
  await create(
    'bpMixed',
    obs('ben', {
      code: { coding: [{ system: 'http://loinc.org', code: '85354-9' }] },
      component: bp(160, 80),
    }),
  );
  await create('risk', {
    resourceType: 'RiskAssessment',
    status: 'final',
    subject: { reference: `Patient/${ids.cy}` },
    prediction: [{ probabilityDecimal: 0.35 }],
  });
  await create('vs', {
    resourceType: 'ValueSet',
    status: 'active',
    url: 'http://example.org/fhir/ValueSet/colors/warm',
  });
  await create('vsRoot', {
    resourceType: 'ValueSet',
    status: 'active',
    url: 'http://example.org/fhir/ValueSet',
  });
  await create('enc', {
    resourceType: 'Encounter',
    status: 'finished',
    class: { code: 'AMB' },
    subject: { reference: `Patient/${ids.ann}` },
    serviceProvider: { reference: `Organization/${ids.acme}` },
  });
  await create('cond', {
    resourceType: 'Condition',
    subject: { reference: `Patient/${ids.ben}`, identifier: { system: 'urn:mrn', value: 'X-7' } },
    code: { text: 'Essential hypertension' },
  });
}, 120_000);

afterAll(async () => {
  await storage?.close();
});

describe('numbers and quantities (R4 search.html#number, #quantity)', () => {
  it('uses the implicit range of the value as written', async () => {
    expect(await set('Observation', `value-quantity=100&subject=${both()}`)).toEqual([
      'w100',
      'w100lb',
      'w99_6',
    ]); // [99.5, 100.5)
    expect(await set('Observation', `value-quantity=100.0&subject=${both()}`)).toEqual(['w100']); // [99.95, 100.05)
    expect(await set('Observation', `value-quantity=1e2&subject=${both()}`)).toEqual([
      'w100',
      'w100lb',
      'w99_6',
    ]); // [50, 150)
    expect(await set('Observation', `value-quantity=ne100.0&subject=${both()}`)).toEqual([
      'neg',
      'w100lb',
      'w99_6',
    ]);
  });

  it('applies prefixes, negative values and units', async () => {
    expect(await set('Observation', `value-quantity=gt99.6&subject=${both()}`)).toEqual(['w100', 'w100lb']);
    expect(await set('Observation', `value-quantity=ge99.6&subject=${both()}`)).toEqual([
      'w100',
      'w100lb',
      'w99_6',
    ]);
    expect(await set('Observation', `value-quantity=lt0&subject=${both()}`)).toEqual(['neg']);
    expect(await set('Observation', `value-quantity=le-0.25&subject=${both()}`)).toEqual(['neg']);
    expect(await set('Observation', `value-quantity=ap95&subject=${both()}`)).toEqual([
      'w100',
      'w100lb',
      'w99_6',
    ]); // 95 ± 9.5
    expect(await set('Observation', `value-quantity=ap91&subject=${both()}`)).toEqual(['w100', 'w99_6']); // 91 ± 9.1
    expect(
      await set('Observation', `value-quantity=100|http://unitsofmeasure.org|kg&subject=${both()}`),
    ).toEqual(['w100', 'w99_6']);
    expect(await set('Observation', `value-quantity=100||lb&subject=${both()}`)).toEqual(['w100lb']); // the unit text
    expect(await set('Observation', `value-quantity=100||[lb_av]&subject=${both()}`)).toEqual(['w100lb']); // the unit code
    expect(await set('RiskAssessment', 'probability=gt0.3')).toEqual(['risk']);
    expect(await set('RiskAssessment', 'probability=0.4')).toEqual([]);
    expect(await set('RiskAssessment', 'probability=0.35')).toEqual(['risk']);
  });

  it('rejects malformed numbers and quantities naming the parameter', async () => {
    for (const qs of [
      'value-quantity=abc',
      'value-quantity=1|a',
      'value-quantity=1|a|b|c',
      'probability=gt',
      'probability=1e999',
    ]) {
      const err = await search(qs.startsWith('prob') ? 'RiskAssessment' : 'Observation', qs).catch(
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ status: 400 });
      expect((err as any).outcome.issue[0].expression[0]).toBe(qs.split('=')[0]);
    }
  });
});

describe('composite parameters (R4 search.html#composite)', () => {
  it('matches both components on the same element', async () => {
    expect(
      await set(
        'Observation',
        `component-code-value-quantity=http://loinc.org|8480-6$gt140&subject=${both()}`,
      ),
    ).toEqual(['bpHigh', 'bpMixed']);
    // bpMixed has a diastolic code and a 160 value, but on different components.
    expect(
      await set(
        'Observation',
        `component-code-value-quantity=http://loinc.org|8462-4$gt140&subject=${both()}`,
      ),
    ).toEqual([]);
    expect(
      await set(
        'Observation',
        `component-code-value-quantity=http://loinc.org|8462-4$gt90&subject=${both()}`,
      ),
    ).toEqual(['bpHigh']);
    expect(
      await set('Observation', `code-value-quantity=http://loinc.org|29463-7$lt100&subject=${both()}`),
    ).toEqual(['w99_6']);
    expect(
      await set(
        'Observation',
        `code-value-quantity=http://loinc.org|29463-7$lt100,urn:test|delta$lt0&subject=${both()}`,
      ),
    ).toEqual(['neg', 'w99_6']);
  });

  it('rejects a composite with the wrong number of parts', async () => {
    await expect(search('Observation', 'code-value-quantity=http://loinc.org|29463-7')).rejects.toMatchObject(
      { status: 400 },
    );
  });
});

describe('modifiers (R4 search.html#modifiers)', () => {
  it(':missing on every parameter type', async () => {
    expect(await set('Patient', 'birthdate:missing=true')).toEqual(['ben', 'cy']);
    expect(await set('Patient', 'birthdate:missing=false')).toEqual(['ann']);
    expect(await set('Patient', 'organization:missing=true')).toEqual(['cy']);
    expect(await set('Observation', 'value-quantity:missing=true&subject=Patient/' + ids.ann)).toEqual([
      'bpHigh',
    ]);
    await expect(search('Patient', 'gender:missing=maybe')).rejects.toMatchObject({ status: 400 });
  });

  it(':not keeps resources without a matching value, including those with none', async () => {
    expect(await set('Patient', 'gender:not=male')).toEqual(['ann', 'cy']);
    expect(await set('Patient', 'gender:not=male,female')).toEqual(['cy']);
  });

  it(':text searches displays and texts; :of-type the identifier type', async () => {
    expect(await set('Observation', 'code:text=body')).toEqual(['w100', 'w99_6']);
    expect(await set('Observation', 'code:text=weight')).toEqual(['w100lb']);
    expect(await set('Condition', `code:text=essential hyp&patient=${ids.ben}`)).toEqual(['cond']);
    expect(
      await set('Patient', 'identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|M-1'),
    ).toEqual(['ann']);
    expect(await set('Patient', 'identifier=M-1')).toEqual(['ann', 'ben']);
    await expect(search('Patient', 'identifier:of-type=MR|M-1')).rejects.toMatchObject({ status: 400 });
  });

  it(':identifier on references, and reference type modifiers', async () => {
    expect(await set('Condition', 'subject:identifier=urn:mrn|X-7')).toEqual(['cond']);
    expect(await set('Condition', 'subject:identifier=X-7')).toEqual(['cond']);
    expect(await set('Condition', 'subject:identifier=urn:other|X-7')).toEqual([]);
    expect(await set('Observation', `subject:Patient=${ids.cy}`)).toEqual([]);
    await expect(search('Observation', `subject:Organization=${ids.ann}`)).rejects.toMatchObject({
      status: 400,
    });
  });

  it(':above and :below on uris follow path segments', async () => {
    expect(await set('ValueSet', 'url:below=http://example.org/fhir/ValueSet')).toEqual(['vs', 'vsRoot']);
    expect(await set('ValueSet', 'url:below=http://example.org/fhir/Value')).toEqual([]);
    expect(await set('ValueSet', 'url:above=http://example.org/fhir/ValueSet/colors/warm/2')).toEqual([
      'vs',
      'vsRoot',
    ]);
    expect(await set('ValueSet', 'url=http://example.org/fhir/ValueSet')).toEqual(['vsRoot']);
  });

  it(':contains filters what another parameter selects, and says so otherwise', async () => {
    expect(await set('Patient', 'name:contains=erss&gender=female')).toEqual(['ann']);
    const err = await search('Patient', 'name:contains=erss').catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 400 });
    expect((err as any).outcome.issue[0].diagnostics).not.toContain('erss');
  });

  it('refuses terminology modifiers and unknown modifiers clearly', async () => {
    await expect(search('Observation', 'code:below=http://loinc.org|1')).rejects.toMatchObject({
      status: 501,
    });
    await expect(search('Patient', 'family:sounds=x')).rejects.toMatchObject({ status: 400 });
    await expect(search('Patient', 'birthdate:exact=2000')).rejects.toMatchObject({ status: 400 });
  });
});

describe('resource-level parameters', () => {
  it('_tag, _profile and _security', async () => {
    expect(await set('Patient', '_tag=urn:tags|vip')).toEqual(['ann']);
    expect(await set('Patient', '_profile=http://example.org/fhir/StructureDefinition/p1')).toEqual(['ann']);
    expect(await set('Patient', '_security=urn:x|y')).toEqual([]);
  });
});

describe('chains and _has (R4 search.html#chaining, #has)', () => {
  it('chains one and two levels, typed and untyped', async () => {
    expect(await set('Observation', 'subject:Patient.name=anders&code=29463-7')).toEqual(['w100', 'w99_6']);
    expect(await set('Observation', 'subject.gender=male')).toEqual(['bpMixed', 'neg', 'w100lb']);
    expect(await set('Observation', 'subject:Patient.organization.name=acme')).toEqual([
      'bpMixed',
      'neg',
      'w100lb',
    ]);
    expect(await set('Patient', 'organization.partof.identifier=urn:org|ACME')).toEqual(['ann']);
    expect(await set('Observation', 'subject.name=nobody')).toEqual([]);
  });

  it('reverse chains with _has, nested', async () => {
    expect(await set('Patient', '_has:Observation:subject:code=85354-9')).toEqual(['ann', 'ben']);
    expect(await set('Patient', '_has:Observation:subject:date=2021-03-04')).toEqual(['ann']);
    expect(await set('Patient', '_has:Observation:subject:code=85354-9&gender=male')).toEqual(['ben']);
    expect(
      await set('Organization', '_has:Patient:organization:_has:Observation:subject:code=urn:test|delta'),
    ).toEqual(['acme']);
  });

  it('refuses bad and over-deep chains with the parameter named', async () => {
    const cases = [
      'code.name=x',
      'subject:Organization.name=x',
      'subject.nonsense=x',
      'subject.organization.partof.partof.partof.name=x',
      '_has:Observation:code:status=final',
      '_has:Observation=x',
    ];
    for (const qs of cases) {
      const err = await search('Observation', qs).catch((e: unknown) => e);
      expect(err, qs).toMatchObject({ status: 400 });
      expect((err as any).outcome.issue[0].expression[0]).toBe(new URLSearchParams(qs).keys().next().value);
    }
  });
});

describe('_sort and paging (R4 search.html#sort, http.html#paging)', () => {
  it('sorts by several keys, descending, with missing values last', async () => {
    expect((await search('Patient', '_sort=family')).names).toEqual(['ann', 'ben', 'cy']);
    expect((await search('Patient', '_sort=-family')).names).toEqual(['cy', 'ben', 'ann']);
    expect((await search('Patient', '_sort=birthdate,-family')).names).toEqual(['ann', 'cy', 'ben']);
    expect((await search('Observation', '_sort=-date,_id&subject=Patient/' + ids.ann)).names).toEqual(
      [['w99_6', 'bpHigh'].sort((a, b) => (ids[a]! < ids[b]! ? -1 : 1)), 'w100'].flat(),
    );
    await expect(search('Patient', '_sort=nonsense')).rejects.toMatchObject({ status: 400 });
  });

  it('pages a sorted search with sealed cursors, forward and back', async () => {
    const first = await search('Observation', '_sort=-value-quantity&_count=2&_total=accurate');
    expect(first.bundle.total).toBe(6); // the two without a value sort last
    const all = [first.names];
    let bundle = first.bundle;
    const pages = [bundle];
    while (bundle.link.find((l: any) => l.relation === 'next')) {
      const next = new URL(bundle.link.find((l: any) => l.relation === 'next').url);
      expect(next.search).not.toContain('100'); // the cursor carries values, sealed
      bundle = (await search('Observation', next.search.slice(1))).bundle;
      pages.push(bundle);
      all.push(namesOf(bundle, 'match'));
    }
    expect(all.flat().slice(0, 4)).toEqual(['w100lb', 'w100', 'w99_6', 'neg']);
    expect(all.flat().slice(4).sort()).toEqual(['bpHigh', 'bpMixed']);
    expect(new Set(all.flat()).size).toBe(all.flat().length);
    const prev = new URL(pages[1].link.find((l: any) => l.relation === 'previous').url);
    expect(namesOf((await search('Observation', prev.search.slice(1))).bundle, 'match')).toEqual(all[0]);
    const tampered = new URL(pages[1].link.find((l: any) => l.relation === 'previous').url);
    tampered.searchParams.set(
      '_cursor',
      tampered.searchParams.get('_cursor')!.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')),
    );
    await expect(search('Observation', tampered.search.slice(1))).rejects.toMatchObject({ status: 400 });
  });

  it('gives previous links for id-ordered pages', async () => {
    const first = await search('Observation', '_count=3');
    const next = new URL(first.bundle.link.find((l: any) => l.relation === 'next').url);
    const second = await search('Observation', next.search.slice(1));
    const prev = new URL(second.bundle.link.find((l: any) => l.relation === 'previous').url);
    expect((await search('Observation', prev.search.slice(1))).names).toEqual(first.names);
    await expect(search('Observation', '_cursor=zz')).rejects.toMatchObject({ status: 400 });
  });
});

describe('_include variants (R4 search.html#include)', () => {
  it(':iterate follows includes of included resources', async () => {
    const r = await search(
      'Observation',
      `_id=${ids.w100}&_include=Observation:subject&_include:iterate=Patient:organization&_include:iterate=Organization:partof`,
    );
    expect(namesOf(r.bundle, 'include').sort()).toEqual(['acme', 'ann', 'beta']);
    const plain = await search(
      'Observation',
      `_id=${ids.w100}&_include=Observation:subject&_include=Patient:organization`.replace(
        '&_include=Patient:organization',
        '',
      ),
    );
    expect(namesOf(plain.bundle, 'include')).toEqual(['ann']);
  });

  it('* includes every reference; revinclude with Type:*', async () => {
    const r = await search('Encounter', `_id=${ids.enc}&_include=*`);
    expect(namesOf(r.bundle, 'include').sort()).toEqual(['acme', 'ann']);
    const rev = await search('Patient', `_id=${ids.ann}&_revinclude=Encounter:*`);
    expect(namesOf(rev.bundle, 'include')).toEqual(['enc']);
  });
});

describe('compartment search (R4 compartmentdefinition-patient.html)', () => {
  it('finds the resources in a Patient compartment', async () => {
    const b = await searches.search(ctx, 'Observation', toQuery('code=85354-9'), false, {
      compartment: { type: 'Patient', id: ids.ann! },
    });
    expect(namesOf(b, 'match')).toEqual(['bpHigh']);
    expect(b.link![0]!.url).toContain(`/Patient/${ids.ann}/Observation?`);
    const enc = await searches.search(ctx, 'Encounter', {}, false, {
      compartment: { type: 'Patient', id: ids.ben! },
    });
    expect(enc.entry).toEqual([]);
    await expect(
      searches.search(ctx, 'Observation', {}, false, { compartment: { type: 'Device', id: 'x' } }),
    ).rejects.toMatchObject({ status: 501 });
  });
});

describe('per-patient index keys (patient-scope.ts)', () => {
  it('refuses a search across patients on a patient-scoped parameter, naming it', async () => {
    for (const [type, qs, param] of [
      ['Observation', 'value-quantity=100', 'value-quantity'],
      ['Observation', 'code-value-quantity=http://loinc.org|29463-7$lt100', 'value-quantity'],
      ['Condition', 'code=x', 'code'],
      ['Observation', `value-quantity=100&subject=${ids.ann}`, 'value-quantity'], // untyped: not a pin
    ] as const) {
      const err = await search(type, qs).catch((e: unknown) => e);
      expect(err, qs).toMatchObject({ status: 400 });
      expect((err as any).outcome.issue[0].expression).toEqual([param]);
    }
  });

  it('answers it once the patient is named: by reference, by chain or by compartment', async () => {
    expect(await set('Observation', `value-quantity=100&subject=Patient/${ids.ann}`)).toEqual([
      'w100',
      'w99_6',
    ]);
    expect(await set('Observation', `value-quantity=100&patient=${ids.ben}`)).toEqual(['w100lb']);
    expect(await set('Observation', 'value-quantity=100&subject:Patient.name=andersson')).toEqual([
      'w100',
      'w99_6',
    ]);
    const b = await searches.search(ctx, 'Observation', toQuery('value-quantity=100'), false, {
      compartment: { type: 'Patient', id: ids.ben! },
    });
    expect(namesOf(b, 'match')).toEqual(['w100lb']);
  });

  it('gives equal values of two patients unrelated tokens', async () => {
    const a = await create('sameA', {
      resourceType: 'Condition',
      subject: { reference: `Patient/${ids.ann}` },
      code: { coding: [{ system: 'urn:dx', code: 'D1' }] },
    });
    const b = await create('sameB', {
      resourceType: 'Condition',
      subject: { reference: `Patient/${ids.ben}` },
      code: { coding: [{ system: 'urn:dx', code: 'D1' }] },
    });
    const index = new SearchIndex(storage.store.keys);
    await index.ready();
    const token = (patient?: string) => tokenToInt64(index.hash('Condition', 'code', 's|urn:dx|D1', patient));
    const held = async (id: string) =>
      (
        await storage.db.query<{ t: string[] }>(
          'SELECT search_tokens::text[] AS t FROM resource WHERE id = $1',
          [id],
        )
      ).rows[0]!.t;
    const [ta, tb] = [await held(a), await held(b)];
    expect(ta).toContain(token(ids.ann));
    expect(tb).toContain(token(ids.ben));
    expect(token(ids.ann)).not.toBe(token(ids.ben));
    expect([...ta, ...tb]).not.toContain(token()); // no global token of the code at all
    expect(await set('Condition', `code=urn:dx|D1&patient=${ids.ann}`)).toEqual(['sameA']);
    expect(await set('Condition', `code=urn:dx|D1&subject=Patient/${ids.ann},Patient/${ids.ben}`)).toEqual([
      'sameA',
      'sameB',
    ]);
  });
});

describe('compartment search and the CapabilityStatement through the engine', () => {
  it('routes GET Patient/[id]/[type] to a compartment search', async () => {
    const res = await engine.handle(ctx, {
      method: 'GET',
      path: `Patient/${ids.ann}/Observation`,
      query: toQuery('value-quantity=100'),
      headers: {},
    });
    expect(namesOf(res.body, 'match').sort()).toEqual(['w100', 'w99_6']);
  });

  it('declares includes, reverse includes and per-patient parameters', async () => {
    const res = await engine.handle(ctx, { method: 'GET', path: 'metadata', query: {}, headers: {} });
    const rest = (res.body as any).rest[0].resource;
    const obs = rest.find((r: any) => r.type === 'Observation');
    const patient = rest.find((r: any) => r.type === 'Patient');
    expect(obs.searchInclude).toContain('Observation:subject');
    expect(obs.searchInclude).toContain('*');
    expect(patient.searchRevInclude).toContain('Observation:subject');
    expect(obs.searchParam.find((p: any) => p.name === 'value-quantity').documentation).toMatch(
      /per patient/,
    );
    expect(obs.searchParam.find((p: any) => p.name === 'code').documentation).toBeUndefined();
  });
});

describe('edges the property tests found', () => {
  it('takes _lastUpdated and _at at the end of year 9999, and years before 100, without a 500', async () => {
    expect((await search('Patient', '_lastUpdated=9999')).names).toEqual([]);
    expect((await search('Patient', '_lastUpdated=gt9999-12-31')).names).toEqual([]);
    expect((await search('Patient', '_lastUpdated=lt9999')).names.sort()).toEqual(['ann', 'ben', 'cy']);
    expect((await search('Patient', '_lastUpdated=ap0001')).names).toEqual([]);
    const history = await engine.handle(ctx, {
      method: 'GET',
      path: '_history',
      query: { _at: ['9999'] },
      headers: {},
    });
    expect(history.status).toBe(200);
  });

  it('reads four-digit years below 100 as themselves, not as 19xx', async () => {
    await create('ancient', {
      resourceType: 'Patient',
      name: [{ family: 'Ancient' }],
      birthDate: '0050-03-01',
    });
    await create('modern', {
      resourceType: 'Patient',
      name: [{ family: 'Ancient' }],
      birthDate: '1950-03-01',
    });
    expect(await set('Patient', 'birthdate=0050&family=ancient')).toEqual(['ancient']);
    expect(await set('Patient', 'birthdate=lt1000&family=ancient')).toEqual(['ancient']);
    expect(await set('Patient', 'birthdate=1950&family=ancient')).toEqual(['modern']);
  });

  it('matches nothing for an _id that is no id, and refuses impossible offsets', async () => {
    expect((await search('Patient', `_id=a\u0000,${ids.ann}`)).names).toEqual(['ann']);
    expect((await search('Patient', '_id=a\u0000')).names).toEqual([]);
    await expect(search('Patient', 'birthdate=2020-01-01T10:00:00+99:99')).rejects.toMatchObject({
      status: 400,
    });
  });

  it('does not echo an _include value', async () => {
    const err = await search('Patient', '_revinclude=Patient:PHIsecret').catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 400 });
    expect(JSON.stringify((err as any).outcome)).not.toContain('PHIsecret');
  });
});

describe('long token lists', () => {
  it('answers a chain over many patients, paged, as the short form does', async () => {
    const made: string[] = [];
    for (let i = 0; i < 70; i++) {
      const pid = await create(`many${i}`, { resourceType: 'Patient', name: [{ family: 'Manyfold' }] });
      made.push(
        await create(`manyObs${i}`, {
          resourceType: 'Observation',
          status: 'final',
          code: { text: 'm' },
          subject: { reference: `Patient/${pid}` },
        }),
      );
    }
    const { forward, back } = await walkBothWays('Observation', 'subject:Patient.family=manyfold&_count=25');
    expect(forward).toEqual([...made].sort());
    // And back again through the previous links (the long token list read in descending id order).
    expect(back).toEqual([...made].sort());
  });
});

describe('chains re-checked per candidate', () => {
  it('finds the targets through the index and drops its false positives on the decrypted target', async () => {
    // "lazarus" is indexed as its 6-letter prefix, which "Lazarux" shares: all are index candidates, more
    // than are decided at once (DECIDE_NOW), so the Observations' patients are read and checked lazily.
    const lazarus = await create('lazarus', { resourceType: 'Patient', name: [{ family: 'Lazarus' }] });
    const lazarux = await create('lazarux', { resourceType: 'Patient', name: [{ family: 'Lazarux' }] });
    for (let i = 0; i < 40; i++)
      await create(`lazarux${i}`, { resourceType: 'Patient', name: [{ family: 'Lazarux' }] });
    for (const [name, pid] of [
      ['lzObs1', lazarus],
      ['lzObs2', lazarus],
      ['lxObs', lazarux],
    ] as const) {
      await create(name, {
        resourceType: 'Observation',
        status: 'final',
        code: { text: 'lz' },
        subject: { reference: `Patient/${pid}` },
      });
    }
    const probe = vi.spyOn(ResourceRepository.prototype, 'searchCandidateIds');
    const reads = vi.spyOn(ResourceRepository.prototype, 'readCurrentMany');
    try {
      const { names, bundle } = await search('Observation', 'subject:Patient.family=lazarus&_total=accurate');
      expect(names.sort()).toEqual(['lzObs1', 'lzObs2']);
      expect(bundle.total).toBe(2);
      expect(probe).toHaveBeenCalled();
      // Read lazily: the two patients the candidate Observations name, not the 42 candidates.
      expect(reads.mock.calls.flatMap((c) => c[1]).sort()).toEqual([lazarus, lazarux].sort());
      expect(await set('Observation', 'subject:Patient.family=lazarux')).toEqual(['lxObs']);
      expect(await set('Observation', 'subject:Patient.family=lazarus&_sort=_id')).toEqual([
        'lzObs1',
        'lzObs2',
      ]);
      // Two chains on the same reference, AND-ed: each re-checks the same decrypted patient.
      expect(await set('Observation', 'subject:Patient.family=lazarus&subject.name=lazarus')).toEqual([
        'lzObs1',
        'lzObs2',
      ]);
    } finally {
      probe.mockRestore();
      reads.mockRestore();
    }
  });

  it('probes the targets when a walk of the link table does not fill the page', async () => {
    // More targets than are probed at once, whose Observations sort after more links than a walk reads
    // for a page of one (100 per row of the page, 200 here): the walk comes back short and the targets
    // are probed instead, in id order and with cursors, forward and back.
    const targets: string[] = [];
    for (let i = 0; i < 40; i++)
      targets.push(await create(`walkfar${i}`, { resourceType: 'Patient', name: [{ family: 'Walkfar' }] }));
    const other = await create('walkother', { resourceType: 'Patient', name: [{ family: 'Walkfiller' }] });
    const put = async (id: string, subject: string) => {
      const res = await engine.handle(ctx, {
        method: 'PUT',
        path: `Observation/${id}`,
        query: {},
        headers: {},
        body: {
          resourceType: 'Observation',
          id,
          status: 'final',
          code: { text: 'walk' },
          subject: { reference: `Patient/${subject}` },
        },
      });
      expect(res.status).toBe(201);
    };
    for (let i = 0; i < 210; i++) await put(`m-walkfill-${i}`, other);
    for (const i of [1, 2, 3]) await put(`zz-walk-${i}`, targets[i]!);
    const query = vi.spyOn(storage.db, 'query');
    try {
      const { forward, back } = await walkBothWays('Observation', 'subject:Patient.family=walkfar&_count=1');
      expect(forward).toEqual(['zz-walk-1', 'zz-walk-2', 'zz-walk-3']);
      expect(back).toEqual(forward);
      const sqls = query.mock.calls.map((c) => String(c[0]));
      expect(sqls.some((q) => q.includes('SELECT DISTINCT w.id'))).toBe(true);
      expect(sqls.some((q) => q.includes("SELECT DISTINCT (rr.id || '')"))).toBe(true);
    } finally {
      query.mockRestore();
    }
  });

  it("reads a chain's target candidates the same whichever statement shape is chosen", async () => {
    // An identifier chain expects few targets (rows first), a name chain many (one statement); both must
    // return the same candidates for few (decrypted) and for more than DECIDE_NOW (ids only).
    const pts: string[] = [];
    for (let i = 0; i < 40; i++)
      pts.push(
        await create(`shape${i}`, {
          resourceType: 'Patient',
          identifier: [{ system: 'urn:shape', value: `v${i}` }],
          name: [{ family: i < 3 ? 'Shapefew' : 'Shapemany' }],
        }),
      );
    for (const [i, pid] of [0, 1, 2, 39].map((i) => [i, pts[i]!] as const))
      await create(`shapeObs${i}`, {
        resourceType: 'Observation',
        status: 'final',
        code: { text: 'shape' },
        subject: { reference: `Patient/${pid}` },
      });
    // eslint-disable-next-line @typescript-eslint/unbound-method -- called with the spied instance below
    const original = ResourceRepository.prototype.searchCandidateIds;
    const probe = vi.spyOn(ResourceRepository.prototype, 'searchCandidateIds');
    try {
      const all = ['shapeObs0', 'shapeObs1', 'shapeObs2', 'shapeObs39'];
      // query, matches, whether few are expected, candidate count (decrypted when at most 32)
      const cases = [
        ['subject:Patient.identifier=urn:shape|v1', ['shapeObs1'], true, 1],
        ['subject:Patient.identifier=urn:shape|', all, true, 40],
        ['subject:Patient.family=shapefew', all.slice(0, 3), false, 3],
        ['subject:Patient.family=shape', all, false, 40],
      ] as const;
      for (const [qs, expected, few, count] of cases) {
        probe.mockClear();
        expect(await set('Observation', qs)).toEqual(expected);
        expect(probe).toHaveBeenCalledTimes(1);
        const [q, decryptUpTo, expectFew] = probe.mock.calls[0]!;
        expect(expectFew).toBe(few);
        const repo = probe.mock.contexts[0] as ResourceRepository;
        const shapes = await Promise.all([true, false].map((f) => original.call(repo, q, decryptUpTo, f)));
        const summary = (rows: { id: string; json?: Buffer }[]) =>
          rows.map((r) => `${r.id}:${r.json === undefined ? 'id' : 'decrypted'}`).sort();
        expect(summary(shapes[0]!)).toEqual(summary(shapes[1]!));
        expect(shapes[0]!.length).toBe(count);
        expect(shapes[0]!.every((r) => (r.json !== undefined) === count <= decryptUpTo!)).toBe(true);
      }
    } finally {
      probe.mockRestore();
    }
  });

  it('finds the outer candidates through the link table, and re-checks the parameter itself', async () => {
    // More targets than are decided at once: the chain is lazy and, with no other index condition, its
    // Observations come through a join on resource_reference, which holds the references of any element,
    // never those of an old version or a deleted resource.
    const jf: string[] = [];
    for (let i = 0; i < 40; i++)
      jf.push(await create(`joinfield${i}`, { resourceType: 'Patient', name: [{ family: 'Joinfield' }] }));
    const other = await create('joinOther', { resourceType: 'Patient', name: [{ family: 'Elsewhere' }] });
    const obs = (subject: string, extra: object = {}) => ({
      resourceType: 'Observation',
      status: 'final',
      code: { text: 'jf' },
      subject: { reference: `Patient/${subject}` },
      ...extra,
    });
    await create('jfHit', obs(jf[0]!));
    await create('jfVersioned', obs(`${jf[1]!}/_history/1`));
    // The join finds it through performer; its subject is another patient, so the re-check drops it.
    await create('jfPerformer', obs(other, { performer: [{ reference: `Patient/${jf[2]!}` }] }));
    await create('jfBoth', obs(jf[5]!, { performer: [{ reference: `Patient/${jf[6]!}` }] }));
    const moved = await create('jfMoved', obs(jf[3]!));
    const gone = await create('jfGone', obs(jf[4]!));
    const put = await engine.handle(ctx, {
      method: 'PUT',
      path: `Observation/${moved}`,
      query: {},
      headers: {},
      body: { ...obs(other), id: moved },
    });
    expect(put.status).toBe(200);
    await engine.handle(ctx, { method: 'DELETE', path: `Observation/${gone}`, query: {}, headers: {} });
    const probe = vi.spyOn(ResourceRepository.prototype, 'searchCandidates');
    try {
      expect(await set('Observation', 'subject:Patient.family=joinfield')).toEqual([
        'jfBoth',
        'jfHit',
        'jfVersioned',
      ]);
      expect(probe.mock.calls.some((c) => c[0].links?.[0]?.length === 40)).toBe(true);
      // With another index condition the targets are probed by reference token instead: the same answer.
      probe.mockClear();
      expect(await set('Observation', 'subject:Patient.family=joinfield&status=final')).toEqual([
        'jfBoth',
        'jfHit',
        'jfVersioned',
      ]);
      expect(probe.mock.calls.every((c) => c[0].links === undefined)).toBe(true);
      expect(await set('Observation', 'performer:Patient.family=joinfield')).toEqual([
        'jfBoth',
        'jfPerformer',
      ]);
      expect(await set('Observation', 'subject:Patient.family=elsewhere')).toEqual([
        'jfMoved',
        'jfPerformer',
      ]);
      // Two lazy chains AND-ed: two joins, each re-checked through its own parameter.
      expect(
        await set('Observation', 'subject:Patient.family=joinfield&performer:Patient.family=joinfield'),
      ).toEqual(['jfBoth']);
    } finally {
      probe.mockRestore();
    }
  });
});

describe('disagreements the differential harness found', () => {
  it('sorts an open Period start first ascending, as matching reads it', async () => {
    await create('openStart', {
      resourceType: 'Condition',
      subject: { reference: `Patient/${ids.cy}` },
      onsetPeriod: { end: '2019-12-31T23:59:59Z' },
    });
    await create('closed1969', {
      resourceType: 'Condition',
      subject: { reference: `Patient/${ids.cy}` },
      onsetDateTime: '1969-12-31',
    });
    const asc = (await search('Condition', `_sort=onset-date&patient=${ids.cy}`)).names;
    expect(asc.indexOf('openStart')).toBeLessThan(asc.indexOf('closed1969'));
  });

  it('answers an empty pinned chain with an empty result, not a 400', async () => {
    const r = await search('Observation', 'subject:Patient.name=nobody&value-quantity=100');
    expect(r.names).toEqual([]);
  });

  it('refuses per-patient parameters across patients also where the index is not probed', async () => {
    for (const qs of [
      'value-quantity=ne5',
      `value-string:contains=sit&_id=${ids.w100}`,
      'value-quantity:missing=true',
    ]) {
      const err = await search('Observation', qs).catch((e: unknown) => e);
      expect(err, qs).toMatchObject({ status: 400 });
    }
    // No value, no match: only :missing finds absent values.
    expect(await set('Observation', `value-quantity=ne100.0&subject=Patient/${ids.ann}`)).toEqual(['w99_6']);
  });

  it('counts a compartment as selective for :contains', async () => {
    const b = await searches.search(ctx, 'Patient', toQuery('name:contains=erss'), false, {
      compartment: { type: 'Patient', id: ids.ann! },
    });
    expect(namesOf(b, 'match')).toEqual(['ann']);
  });
});

describe('composites that read %resource', () => {
  it('MolecularSequence chromosome-variant-coordinate matches', async () => {
    await create('seq', {
      resourceType: 'MolecularSequence',
      coordinateSystem: 0,
      referenceSeq: {
        genomeBuild: 'GRCh38',
        chromosome: {
          coding: [{ system: 'http://terminology.hl7.org/CodeSystem/chromosome-human', code: '1' }],
        },
      },
      variant: [{ start: 10, end: 20 }],
    });
    expect(await set('MolecularSequence', 'chromosome-variant-coordinate=1$gt5$lt30')).toEqual(['seq']);
    expect(await set('MolecularSequence', 'chromosome-variant-coordinate=2$gt5$lt30')).toEqual([]);
  });
});

describe('system-level search with _type (R4 search.html#searchtype)', () => {
  const system = async (qs: string) =>
    (await engine.handle(ctx, { method: 'GET', path: '', query: toQuery(qs), headers: {} })).body as any;

  it('searches several types with common parameters, pages in (type, id) order', async () => {
    const tag = 'urn:tags|vip';
    await create('taggedOrg', {
      resourceType: 'Organization',
      name: 'Tagged',
      meta: { tag: [{ system: 'urn:tags', code: 'vip' }] },
    });
    const all = await system(`_type=Patient,Organization&_tag=${tag}&_total=accurate`);
    expect(namesOf(all, 'match')).toEqual(['taggedOrg', 'ann']); // Organization sorts before Patient
    expect(all.total).toBe(2);
    const first = await system(`_type=Patient,Organization&_tag=${tag}&_count=1`);
    expect(namesOf(first, 'match')).toEqual(['taggedOrg']);
    const next = new URL(first.link.find((l: any) => l.relation === 'next').url);
    expect(namesOf(await system(next.search.slice(1)), 'match')).toEqual(['ann']);
  });

  it('includes per source type and revincludes across types', async () => {
    const tag = 'urn:tags|vip';
    const withIncludes = await system(
      `_type=Patient,Organization&_tag=${tag}&_include=Patient:organization&_revinclude=Observation:subject`,
    );
    expect(namesOf(withIncludes, 'match')).toEqual(['taggedOrg', 'ann']);
    const included = namesOf(withIncludes, 'include');
    // ann's managing organization (the tagged Organization has none), and ann's observations.
    expect(included).toContain('beta');
    const annObservations = (await search('Observation', `subject=Patient/${ids.ann}`)).names;
    expect(annObservations.length).toBeGreaterThan(0);
    expect(included.filter((n) => n !== 'beta').sort()).toEqual([...annObservations].sort());
    const self = new URL(withIncludes.link.find((l: any) => l.relation === 'self').url);
    expect(self.searchParams.getAll('_include')).toEqual(['Patient:organization']);
    // The include survives paging.
    const first = await system(
      `_type=Patient,Organization&_tag=${tag}&_count=1&_include=Patient:organization`,
    );
    const next = new URL(first.link.find((l: any) => l.relation === 'next').url);
    const second = await system(next.search.slice(1));
    expect([namesOf(second, 'match'), namesOf(second, 'include')]).toEqual([['ann'], ['beta']]);
    // An _include whose source type is not searched is a mistake.
    await expect(system(`_type=Patient,Organization&_include=Observation:subject`)).rejects.toMatchObject({
      status: 400,
    });
  });

  it('sorts across types by a parameter each defines, paging with sealed cursors', async () => {
    const tag = 'urn:tags|vip';
    // Patient.name is a HumanName ("Andersson"), Organization.name a string ("Tagged").
    const up = await system(`_type=Patient,Organization&_tag=${tag}&_sort=name&_total=accurate`);
    expect(namesOf(up, 'match')).toEqual(['ann', 'taggedOrg']);
    expect(up.total).toBe(2);
    const down = await system(`_type=Patient,Organization&_tag=${tag}&_sort=-name&_count=1`);
    expect(namesOf(down, 'match')).toEqual(['taggedOrg']);
    const next = new URL(down.link.find((l: any) => l.relation === 'next').url);
    expect(next.searchParams.get('_cursor')).not.toContain('Andersson');
    const second = await system(next.search.slice(1));
    expect(namesOf(second, 'match')).toEqual(['ann']);
    const back = new URL(second.link.find((l: any) => l.relation === 'previous').url);
    expect(namesOf(await system(back.search.slice(1)), 'match')).toEqual(['taggedOrg']);
    // A cursor of another search is refused; a sort parameter one type lacks is a 400.
    await expect(
      system(`_type=Patient,Organization&_tag=${tag}&_sort=name&_cursor=${next.searchParams.get('_cursor')}`),
    ).rejects.toMatchObject({ status: 400 });
    await expect(system(`_type=Patient,Organization&_sort=family`)).rejects.toMatchObject({ status: 400 });
  });

  it('refuses what cannot be answered exactly across types', async () => {
    await expect(system('_tag=x')).rejects.toMatchObject({ status: 400 });
    await expect(system('_type=Patient,Nonsense')).rejects.toMatchObject({ status: 400 });
    await expect(system('_type=Patient,Observation&family=x')).rejects.toMatchObject({ status: 400 });
    await expect(search('Patient', '_type=Patient')).rejects.toMatchObject({ status: 400 });
  });
});

describe('references as resolve() reads them (param-expression.ts, FHIR R4 fhirpath.html#functions)', () => {
  beforeAll(async () => {
    const status = 'final';
    const code = { coding: [{ system: 'http://example.org/codes', code: 'ref-kinds' }] };
    await create('absolute', {
      resourceType: 'Observation',
      status,
      code,
      subject: { reference: 'http://example.org/fhir/Patient/p9' },
    });
    await create('contained', {
      resourceType: 'Observation',
      status,
      code,
      contained: [{ resourceType: 'Patient', id: 'p1', name: [{ family: 'Inside' }] }],
      subject: { reference: '#p1' },
    });
    await create('logical', {
      resourceType: 'Observation',
      status,
      code,
      subject: { type: 'Patient', identifier: { system: 'urn:mrn', value: 'L-1' } },
    });
    await create('displayOnly', {
      resourceType: 'Observation',
      status,
      code,
      subject: { display: 'Someone' },
    });
  });
  const q = (rest: string) => set('Observation', `code=http://example.org/codes|ref-kinds&${rest}`);

  it('keeps absolute and contained Patient references in patient, not logical ones', async () => {
    expect(await q('patient=http://example.org/fhir/Patient/p9')).toEqual(['absolute']);
    expect(await q('patient:missing=false')).toEqual(['absolute', 'contained']);
    // A logical reference resolves to nothing: the patient parameter has no value, subject has one.
    expect(await q('patient:identifier=urn:mrn|L-1')).toEqual([]);
    expect(await q('subject:identifier=urn:mrn|L-1')).toEqual(['logical']);
  });

  it('counts a Reference with only a display as missing, in the index and in the re-check alike', async () => {
    expect(await q('subject:missing=true')).toEqual(['displayOnly']);
    expect(await q('subject:missing=false')).toEqual(['absolute', 'contained', 'logical']);
  });
});

describe('very long token lists (candidateWhere chunks)', () => {
  it('reads a list of thousands of tokens in chunks, ANDed with a short condition, as the short list', async () => {
    const made: string[] = [];
    for (const [i, gender] of ['female', 'male', 'female', 'female'].entries())
      made.push(
        await create(`chunk${i}`, { resourceType: 'Patient', gender, name: [{ family: `Chunkwise${i}` }] }),
      );
    const index = new SearchIndex(storage.store.keys);
    await index.ready();
    const family = made.map((_, i) => index.hash('Patient', 'family', `x|Chunkwise${i}`));
    // Tokens nothing carries, around the real ones: 2,500 in all, so several chunks.
    const noise = Array.from({ length: 2496 }, (_, i) => index.hash('Patient', 'family', `x|none${i}`));
    const query = (tokens: string[]) => ({
      resourceType: 'Patient',
      conditions: [
        { terms: [{ param: 'family', tokens }] },
        { terms: [{ param: 'gender', tokens: [index.hash('Patient', 'gender', 'c|female')] }] },
      ],
      lastUpdated: [],
      limit: 50,
    });
    const ids = async (tokens: string[]) =>
      (await storage.store.repo.searchCandidates(query(tokens))).map((c) => c.id);
    const expected = [made[0]!, made[2]!, made[3]!].sort();
    expect(await ids(family)).toEqual(expected);
    expect(await ids([...noise.slice(0, 1200), ...family, ...noise.slice(1200)])).toEqual(expected);
    const sql = vi.spyOn(storage.db, 'query');
    await ids([...noise, ...family]);
    expect(sql.mock.calls.some(([text]) => text.includes('UNION ALL'))).toBe(true);
    sql.mockRestore();
  });
});

describe('id bands (id-bands.ts)', () => {
  it('pages a short prefix in id order across every band, forward and back, with ids at the band edges', async () => {
    // One matching Patient per id character (the band edges among them: "-", ".", "0", "9", "A", "Z",
    // "a", "b", "e", "f", "z"), and a non-matching one beside each, so every band has both.
    const chars = '-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
    const made: string[] = [];
    for (const [i, c] of [...chars].entries()) {
      for (const [id, family] of [
        [`${c}band${i}`, i % 2 ? 'Bandolier' : 'Bäncroft'],
        [`${c}other${i}`, 'Otherly'],
      ] as const) {
        const res = await engine.handle(ctx, {
          method: 'PUT',
          path: `Patient/${id}`,
          query: {},
          headers: {},
          body: { resourceType: 'Patient', id, name: [{ family }] },
        });
        expect(res.status).toBe(201);
        if (family !== 'Otherly') made.push(id);
      }
    }
    // JavaScript's order of ASCII ids is byte order, which resource.id keeps (migration 0005).
    const expected = [...made].sort();
    const spy = vi.spyOn(ResourceRepository.prototype, 'searchCandidates');
    const { forward, back } = await walkBothWays('Patient', 'family=ban&_count=5');
    expect(forward).toEqual(expected);
    expect(back).toEqual(expected);
    // The pages went through the band tokens ("ban" is 3 characters; "bandol" has none of its own).
    expect(spy.mock.calls.length).toBeGreaterThan(10);
    expect(spy.mock.calls.every(([q]) => q.banded !== undefined)).toBe(true);
    spy.mockClear();
    expect((await set('Patient', 'family=bandol&_count=50')).length).toBe(32);
    expect(spy.mock.calls.every(([q]) => q.banded === undefined)).toBe(true);
    spy.mockRestore();
    // Several values and a second condition keep the same answer.
    const both = await search('Patient', `family=ban,oth&_count=200`);
    expect(both.bundle.entry.length).toBe(chars.length * 2);
    const odd = await search('Patient', `family=ban&name=bando&_count=200`);
    expect(odd.bundle.entry.map((e: any) => e.resource.id)).toEqual(
      expected.filter((id) => Number(/\d+$/.exec(id)![0]) % 2 === 1),
    );
  });
});
