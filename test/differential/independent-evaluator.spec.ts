import { describe, expect, it } from 'vitest';
import { loadR4Definitions } from '../../apps/fhir-gateway/src/fhir/definitions.js';
import {
  approximateDate,
  bruteForce,
  compareDecimal,
  includedKeys,
  isBelow,
  localReference,
  numberMatches,
  parseDecimal,
  searchIds,
  sortValue,
} from './independent-evaluator.js';

/** The oracle's _include/_revinclude and reference parsing (used by scripts/synthea-compare.ts). */
loadR4Definitions();

type Res = { resourceType: string; id: string } & Record<string, unknown>;
const resources: Res[] = [
  { resourceType: 'Patient', id: 'p1', generalPractitioner: [{ reference: 'Practitioner/dr1' }] },
  {
    resourceType: 'Patient',
    id: 'p2',
    generalPractitioner: [{ reference: 'Organization/org1' }, { reference: 'Practitioner/gone' }],
  },
  { resourceType: 'Practitioner', id: 'dr1' },
  { resourceType: 'Organization', id: 'org1' },
  {
    resourceType: 'Encounter',
    id: 'e1',
    status: 'finished',
    class: { code: 'AMB' },
    subject: { reference: 'Patient/p1' },
    participant: [{ individual: { reference: 'Practitioner/dr1/_history/3' } }],
    serviceProvider: { reference: 'http://elsewhere.example/fhir/Organization/org1' },
  },
  {
    resourceType: 'Encounter',
    id: 'e2',
    status: 'finished',
    class: { code: 'AMB' },
    subject: { reference: 'Patient/p2' },
    serviceProvider: { reference: 'Organization/org1' },
  },
  {
    resourceType: 'Observation',
    id: 'o1',
    status: 'final',
    code: { text: 'x' },
    subject: { reference: 'Patient/p1' },
    encounter: { reference: 'Encounter/e1' },
  },
  {
    resourceType: 'Observation',
    id: 'o2',
    status: 'final',
    code: { text: 'x' },
    subject: { reference: 'Group/p1' },
  },
];
const byId = (...ids: string[]) => resources.filter((r) => ids.includes(r.id));

describe('independent evaluator: references, _include and _revinclude', () => {
  it('reads local references, versioned or not, and nothing else', () => {
    expect(localReference('Patient/p1')).toEqual(['Patient', 'p1']);
    expect(localReference('Practitioner/dr1/_history/3')).toEqual(['Practitioner', 'dr1']);
    expect(localReference('http://x.example/fhir/Patient/p1')).toBeUndefined();
    expect(localReference('urn:uuid:2b4f3c2e-0d0c-4f7e-9a55-0c6d1f9e3a11')).toBeUndefined();
    expect(localReference('#contained')).toBeUndefined();
    expect(localReference('patient/p1')).toBeUndefined();
  });

  it('includes what the matches refer to, by target type, existing and not already on the page', () => {
    const page = byId('p1', 'p2');
    expect(includedKeys(resources, page, ['Patient:general-practitioner'], [])).toEqual([
      'Organization/org1',
      'Practitioner/dr1',
    ]);
    expect(includedKeys(resources, page, ['Patient:general-practitioner:Practitioner'], [])).toEqual([
      'Practitioner/dr1',
    ]);
    // Versioned references are local; absolute URLs are not followed.
    expect(
      includedKeys(resources, byId('e1'), ['Encounter:practitioner', 'Encounter:service-provider'], []),
    ).toEqual(['Practitioner/dr1']);
    // A match is not included again.
    expect(includedKeys(resources, byId('e2', 'org1'), ['Encounter:service-provider'], [])).toEqual([]);
  });

  it('revincludes what refers to the matches, by target type, each once', () => {
    expect(includedKeys(resources, byId('p1'), [], ['Encounter:subject', 'Observation:subject'])).toEqual([
      'Encounter/e1',
      'Observation/o1',
    ]);
    // Observation:patient only follows references to a Patient (o2 points at a Group with the same id).
    expect(includedKeys(resources, byId('p1', 'p2'), [], ['Observation:patient'])).toEqual([
      'Observation/o1',
    ]);
    expect(includedKeys(resources, byId('p1', 'dr1'), [], ['Encounter:participant:Patient'])).toEqual([]);
    expect(includedKeys(resources, byId('p1', 'dr1'), [], ['Encounter:participant:Practitioner'])).toEqual([
      'Encounter/e1',
    ]);
    expect(
      includedKeys(
        resources,
        byId('p1', 'e1'),
        ['Encounter:subject'],
        ['Encounter:subject', 'Observation:encounter'],
      ),
    ).toEqual(['Observation/o1']);
  });

  it('refuses a parameter that is not a reference', () => {
    expect(() => includedKeys(resources, byId('p1'), ['Patient:name'], [])).toThrow(/no reference parameter/);
  });

  it('keeps bruteForce as it was for the references it shares', () => {
    expect(bruteForce(resources, 'Observation', [['patient', 'p1']])).toEqual(['o1']);
    expect(bruteForce(resources, 'Observation', [['subject', 'Group/p1']])).toEqual(['o2']);
  });
});

describe('independent evaluator: numbers and quantities (R4 search.html#number, #quantity)', () => {
  it('parses decimals exactly, with half a unit of the last digit', () => {
    expect(parseDecimal('100')).toEqual({ value: { m: 100n, e: 0 }, half: { m: 5n, e: -1 } });
    expect(parseDecimal('-0.25')).toEqual({ value: { m: -25n, e: -2 }, half: { m: 5n, e: -3 } });
    expect(parseDecimal('1e2')).toEqual({ value: { m: 1n, e: 2 }, half: { m: 5n, e: 1 } });
    expect(parseDecimal('abc')).toBeUndefined();
    expect(compareDecimal({ m: 1n, e: 2 }, { m: 100n, e: 0 })).toBe(0);
    expect(compareDecimal({ m: -25n, e: -2 }, { m: -3n, e: -1 })).toBe(1);
  });

  it('uses the implicit range for eq and ne', () => {
    expect([99.4, 99.5, 100.4, 100.5].map((n) => numberMatches('eq', '100', n))).toEqual([
      false,
      true,
      true,
      false,
    ]);
    expect([99.949, 99.95, 100.05].map((n) => numberMatches('eq', '100.0', n))).toEqual([false, true, false]);
    expect([49.99, 50, 149.9, 150].map((n) => numberMatches('eq', '1e2', n))).toEqual([
      false,
      true,
      true,
      false,
    ]);
    // No binary rounding: 0.3 + 0.05 is exactly 0.35, the excluded end.
    expect([0.25, 0.35].map((n) => numberMatches('eq', '0.3', n))).toEqual([true, false]);
    expect(numberMatches('ne', '100', 100.4)).toBe(false);
    expect(numberMatches('ne', '100', 100.5)).toBe(true);
  });

  it('compares ordering prefixes with the value as written', () => {
    expect(numberMatches('gt', '100', 100.4)).toBe(true);
    expect(numberMatches('gt', '100', 100)).toBe(false);
    expect(numberMatches('ge', '100', 100)).toBe(true);
    expect(numberMatches('lt', '0', -0.25)).toBe(true);
    expect(numberMatches('le', '-0.25', -0.25)).toBe(true);
    expect(numberMatches('sa', '1e2', 100.1)).toBe(true);
    expect(numberMatches('eb', '1e2', 100)).toBe(false);
  });

  it('ap: within 10% of the value or within the precision range', () => {
    expect([85.5, 85.4, 104.5, 104.6].map((n) => numberMatches('ap', '95', n))).toEqual([
      true,
      false,
      true,
      false,
    ]);
    expect([-0.5, 0.5, 0.6].map((n) => numberMatches('ap', '0', n))).toEqual([true, true, false]);
    expect(numberMatches('ap', '-1', -1.1)).toBe(true);
  });

  it('matches quantities by value, system|code, or ||code against code or unit text', () => {
    const rs: Res[] = [
      {
        resourceType: 'Observation',
        id: 'kg',
        status: 'final',
        code: { text: 'w' },
        valueQuantity: { value: 100, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' },
      },
      {
        resourceType: 'Observation',
        id: 'lb',
        status: 'final',
        code: { text: 'w' },
        valueQuantity: { value: 100.4, unit: 'lb', system: 'http://unitsofmeasure.org', code: '[lb_av]' },
      },
      {
        resourceType: 'Observation',
        id: 'pct',
        status: 'final',
        code: { text: 'w' },
        valueQuantity: { value: 99.5, unit: '%' },
      },
      {
        resourceType: 'Observation',
        id: 'none',
        status: 'final',
        code: { text: 'w' },
        valueQuantity: { unit: 'kg' },
      },
    ];
    const q = (v: string) => searchIds(rs, 'Observation', [['value-quantity', v]]);
    expect(q('100')).toEqual(['kg', 'lb', 'pct']);
    expect(q('100|http://unitsofmeasure.org|kg')).toEqual(['kg']);
    expect(q('100||lb')).toEqual(['lb']);
    expect(q('100||[lb_av]')).toEqual(['lb']);
    expect(q('100||%')).toEqual(['pct']);
    expect(q('100|urn:x|kg')).toEqual([]);
    expect(q('gt99.5,lt0')).toEqual(['kg', 'lb']);
    // @medplum/core's value.ofType(Quantity) yields nothing for a Quantity without a value (the server
    // evaluates the same FHIRPath, so the harness cannot tell which reading of :missing is meant here).
    expect(searchIds(rs, 'Observation', [['value-quantity:missing', 'false']])).toEqual(['kg', 'lb', 'pct']);
  });

  it('matches numbers of RiskAssessment.prediction', () => {
    const rs: Res[] = [
      {
        resourceType: 'RiskAssessment',
        id: 'r1',
        status: 'final',
        prediction: [{ probabilityDecimal: 0.35 }, { probabilityDecimal: 0.05 }],
      },
      { resourceType: 'RiskAssessment', id: 'r2', status: 'final' },
    ];
    expect(searchIds(rs, 'RiskAssessment', [['probability', '0.35']])).toEqual(['r1']);
    expect(searchIds(rs, 'RiskAssessment', [['probability', '5e-2']])).toEqual(['r1']);
    expect(searchIds(rs, 'RiskAssessment', [['probability', 'gt0.4']])).toEqual([]);
    expect(searchIds(rs, 'RiskAssessment', [['probability:missing', 'true']])).toEqual(['r2']);
  });
});

const UCUM = 'http://unitsofmeasure.org';
const mmHg = (value: number) => ({ value, unit: 'mmHg', system: UCUM, code: 'mm[Hg]' });
const clinical: Res[] = [
  {
    resourceType: 'Organization',
    id: 'root',
    name: 'Acme Hôpital',
    identifier: [{ system: 'urn:org', value: 'ACME' }],
  },
  {
    resourceType: 'Organization',
    id: 'mid',
    name: 'Acme Clinic',
    partOf: { reference: 'Organization/root' },
  },
  {
    resourceType: 'Organization',
    id: 'leaf',
    name: 'Beta Klinik',
    partOf: { reference: 'Organization/mid' },
  },
  {
    resourceType: 'Patient',
    id: 'ann',
    gender: 'female',
    name: [{ family: 'Müller', given: ['Ann'] }],
    managingOrganization: { reference: 'Organization/leaf' },
    identifier: [
      {
        system: 'urn:mrn',
        value: 'M-1',
        type: {
          coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }],
          text: 'Médical record',
        },
      },
    ],
  },
  {
    resourceType: 'Patient',
    id: 'ben',
    name: [{ family: 'Berg' }],
    managingOrganization: { reference: 'Organization/mid' },
  },
  { resourceType: 'Patient', id: 'cy', gender: 'male', name: [{ given: ['Cy'] }], birthDate: '2000' },
  {
    resourceType: 'Observation',
    id: 'bp1',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '85354-9', display: 'Blood pressure panel' }] },
    subject: { reference: 'Patient/ann', identifier: { system: 'urn:mrn', value: 'M-1' } },
    effectiveDateTime: '2020-03-01',
    component: [
      { code: { coding: [{ system: 'http://loinc.org', code: '8480-6' }] }, valueQuantity: mmHg(150) },
      { code: { coding: [{ system: 'http://loinc.org', code: '8462-4' }] }, valueQuantity: mmHg(95) },
    ],
  },
  {
    resourceType: 'Observation',
    id: 'bp2',
    status: 'amended',
    code: { coding: [{ system: 'http://loinc.org', code: '85354-9' }], text: 'BP' },
    subject: { reference: 'Patient/ben/_history/2' },
    effectivePeriod: { start: '2021-01-01', end: '2021-01-02' },
    component: [
      { code: { coding: [{ system: 'http://loinc.org', code: '8480-6' }] }, valueQuantity: mmHg(90) },
      { code: { coding: [{ system: 'http://loinc.org', code: '8462-4' }] }, valueQuantity: mmHg(160) },
    ],
  },
  {
    resourceType: 'Observation',
    id: 'w',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '29463-7', display: 'Body weight' }] },
    subject: { reference: 'Patient/ann' },
    valueQuantity: { value: 99.6, unit: 'kg', system: UCUM, code: 'kg' },
  },
  {
    resourceType: 'Observation',
    id: 's',
    status: 'final',
    code: { text: 'Urine' },
    subject: { reference: 'Patient/cy' },
    valueString: 'Positive',
  },
  { resourceType: 'ValueSet', id: 'vsRoot', status: 'active', url: 'http://example.org/fhir/ValueSet' },
  {
    resourceType: 'ValueSet',
    id: 'vsWarm',
    status: 'active',
    url: 'http://example.org/fhir/ValueSet/colors/warm',
  },
  {
    resourceType: 'ValueSet',
    id: 'vsSlash',
    status: 'active',
    url: 'http://example.org/fhir/ValueSet/colors/',
  },
  { resourceType: 'ValueSet', id: 'vsX', status: 'active', url: 'http://example.org/fhir/ValueSetX' },
  { resourceType: 'ValueSet', id: 'vsNone', status: 'draft' },
  {
    resourceType: 'Condition',
    id: 'c1',
    subject: { reference: 'Patient/ann' },
    code: {
      coding: [{ system: 'urn:dx', code: 'I10', display: 'Hypertension essentielle' }],
      text: 'Essential hypertension',
    },
    onsetDateTime: '2019-05',
  },
  {
    resourceType: 'Condition',
    id: 'c2',
    subject: { reference: 'Patient/ben' },
    onsetPeriod: { start: '2018', end: '2020-01-01' },
  },
];
const s = (type: string, q: [string, string][], options = {}) => searchIds(clinical, type, q, options);

describe('independent evaluator: composites, modifiers, uris (R4 search.html#composite, #modifiers, #uri)', () => {
  it('composite: every part on the same element', () => {
    expect(s('Observation', [['component-code-value-quantity', 'http://loinc.org|8480-6$gt140']])).toEqual([
      'bp1',
    ]);
    expect(s('Observation', [['component-code-value-quantity', 'http://loinc.org|8462-4$gt140']])).toEqual([
      'bp2',
    ]);
    expect(
      s('Observation', [
        ['component-code-value-quantity', 'http://loinc.org|8462-4$gt170,http://loinc.org|8480-6$lt100'],
      ]),
    ).toEqual(['bp2']);
    expect(s('Observation', [['code-value-quantity', 'http://loinc.org|29463-7$lt100']])).toEqual(['w']);
    expect(s('Observation', [['code-value-quantity', 'http://loinc.org|85354-9$lt100']])).toEqual([]);
    expect(s('Observation', [['combo-code-value-quantity', '8480-6$90']])).toEqual(['bp2']);
    expect(s('Observation', [['component-code-value-quantity:missing', 'true']])).toEqual(['s', 'w']);
  });

  it(':missing, :not (with resources that have no value), :exact and :contains', () => {
    expect(s('Patient', [['gender:missing', 'true']])).toEqual(['ben']);
    expect(s('Patient', [['organization:missing', 'false']])).toEqual(['ann', 'ben']);
    expect(s('Patient', [['gender:not', 'male']])).toEqual(['ann', 'ben']);
    expect(s('Patient', [['gender:not', 'male,female']])).toEqual(['ben']);
    expect(s('Patient', [['family:exact', 'Müller']])).toEqual(['ann']);
    expect(s('Patient', [['family:exact', 'muller']])).toEqual([]);
    expect(s('Patient', [['name:contains', 'ULL']])).toEqual(['ann']);
    expect(s('Observation', [['value-string:contains', 'siti']])).toEqual(['s']);
  });

  it(':text on codes and identifier types, :of-type, :identifier and :[Type]', () => {
    expect(s('Observation', [['code:text', 'blood']])).toEqual(['bp1']);
    expect(s('Observation', [['code:text', 'bp']])).toEqual(['bp2']);
    expect(s('Condition', [['code:text', 'HYPERTENSION ESS']])).toEqual(['c1']);
    expect(s('Condition', [['code:text', 'essential']])).toEqual(['c1']);
    expect(s('Patient', [['identifier:text', 'medical']])).toEqual(['ann']);
    expect(
      s('Patient', [['identifier:of-type', 'http://terminology.hl7.org/CodeSystem/v2-0203|MR|M-1']]),
    ).toEqual(['ann']);
    expect(
      s('Patient', [['identifier:of-type', 'http://terminology.hl7.org/CodeSystem/v2-0203|SS|M-1']]),
    ).toEqual([]);
    expect(s('Observation', [['subject:identifier', 'urn:mrn|M-1']])).toEqual(['bp1']);
    expect(s('Observation', [['subject:identifier', 'M-1']])).toEqual(['bp1']);
    expect(s('Observation', [['subject:identifier', 'urn:x|M-1']])).toEqual([]);
    expect(s('Observation', [['subject:Patient', 'ben']])).toEqual(['bp2']); // a versioned reference
    expect(s('Observation', [['subject:Group', 'ben']])).toEqual([]);
  });

  it(':below and :above follow path segments', () => {
    expect(isBelow('http://a/fhir/ValueSet/x', 'http://a/fhir/ValueSet')).toBe(true);
    expect(isBelow('http://a/fhir/ValueSetX', 'http://a/fhir/ValueSet')).toBe(false);
    expect(s('ValueSet', [['url:below', 'http://example.org/fhir/ValueSet']])).toEqual([
      'vsRoot',
      'vsSlash',
      'vsWarm',
    ]);
    expect(s('ValueSet', [['url:below', 'http://example.org/fhir/ValueSet/']])).toEqual([
      'vsSlash',
      'vsWarm',
    ]);
    expect(s('ValueSet', [['url:below', 'http://example.org/fhir/Value']])).toEqual([]);
    expect(s('ValueSet', [['url:above', 'http://example.org/fhir/ValueSet/colors/warm/2']])).toEqual([
      'vsRoot',
      'vsSlash',
      'vsWarm',
    ]);
    expect(s('ValueSet', [['url', 'http://example.org/fhir/ValueSet']])).toEqual(['vsRoot']);
    expect(s('ValueSet', [['url:missing', 'true']])).toEqual(['vsNone']);
  });

  it('ap on dates widens by a tenth of the distance from now and matches overlaps', () => {
    const now = Date.UTC(2030, 0, 1);
    const year = (y: number) => [Date.UTC(y, 0, 1), Date.UTC(y + 1, 0, 1)] as [number, number];
    // 2020 widened by a year on each side (10 years from now): 2019 overlaps, 2018 does not.
    expect(approximateDate(year(2020), year(2019), now)).toBe(true);
    expect(approximateDate(year(2020), [Date.UTC(2018, 0, 1), Date.UTC(2018, 11, 1)], now)).toBe(false);
    // The end side moves by a tenth of 2021-01-01 → 2030-01-01 (0.9 years, to late November 2021).
    expect(approximateDate(year(2020), [Date.UTC(2021, 10, 1), Date.UTC(2030, 0, 1)], now)).toBe(true);
    expect(approximateDate(year(2020), [Date.UTC(2021, 11, 31), Date.UTC(2030, 0, 1)], now)).toBe(false);
    expect(s('Condition', [['onset-date', 'ap2020']], { now })).toEqual(['c1', 'c2']);
    expect(s('Condition', [['onset-date', 'ap2022']], { now })).toEqual([]);
  });
});

describe('independent evaluator: chains, _has, compartments and _sort (R4 search.html#chaining, #has, #sort)', () => {
  it('follows chains several levels deep, typed and untyped', () => {
    expect(s('Observation', [['subject:Patient.name', 'muller']])).toEqual(['bp1', 'w']);
    expect(s('Observation', [['subject.organization.name', 'acme']])).toEqual(['bp2']);
    expect(s('Observation', [['subject.organization.partof.name', 'acme']])).toEqual(['bp1', 'bp2', 'w']);
    expect(s('Patient', [['organization.partof.partof.identifier', 'urn:org|ACME']])).toEqual(['ann']);
    expect(s('Observation', [['subject:Patient.name', 'nobody']])).toEqual([]);
  });

  it('_has, nested', () => {
    expect(s('Patient', [['_has:Observation:subject:code', '85354-9']])).toEqual(['ann', 'ben']);
    expect(
      s('Patient', [['_has:Observation:patient:component-code-value-quantity', '8480-6$gt140']]),
    ).toEqual(['ann']);
    expect(
      s('Organization', [['_has:Patient:organization:_has:Observation:subject:code', '29463-7']]),
    ).toEqual(['leaf']);
    expect(s('Organization', [['_has:Patient:organization:gender', 'female,male']])).toEqual(['leaf']);
  });

  it('searches a Patient compartment', () => {
    expect(s('Observation', [], { compartment: { type: 'Patient', id: 'ann' } })).toEqual(['bp1', 'w']);
    expect(s('Observation', [['code', '85354-9']], { compartment: { type: 'Patient', id: 'ben' } })).toEqual([
      'bp2',
    ]);
    expect(s('Condition', [], { compartment: { type: 'Patient', id: 'cy' } })).toEqual([]);
  });

  it('sorts by lowest value ascending, highest descending, missing last, then by id', () => {
    expect(s('Patient', [['_sort', 'family']])).toEqual(['ben', 'ann', 'cy']);
    expect(s('Patient', [['_sort', '-family']])).toEqual(['ann', 'ben', 'cy']);
    expect(s('Patient', [['_sort', 'name']])).toEqual(['ann', 'ben', 'cy']); // "ann" < "berg" < "cy"
    expect(s('Patient', [['_sort', '-birthdate,gender']])).toEqual(['cy', 'ann', 'ben']);
    expect(s('Observation', [['_sort', '-component-value-quantity']])).toEqual(['bp2', 'bp1', 's', 'w']);
    expect(s('Observation', [['_sort', 'component-value-quantity']])).toEqual(['bp2', 'bp1', 's', 'w']);
    expect(s('Condition', [['_sort', 'onset-date']])).toEqual(['c2', 'c1']); // 2018 < 2019-05
    expect(s('Condition', [['_sort', '-onset-date']])).toEqual(['c2', 'c1']); // 2020-01-01 > 2019-05
    expect(s('ValueSet', [['_sort', '-url']])).toEqual(['vsX', 'vsWarm', 'vsSlash', 'vsRoot', 'vsNone']);
    expect(sortValue(clinical[3]!, 'name', false)).toBe('ann');
    expect(sortValue(clinical[3]!, 'family', true)).toBe('muller');
  });
});
