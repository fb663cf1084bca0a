import { describe, expect, it } from 'vitest';
import { loadR4Definitions } from '../../apps/fhir-gateway/src/fhir/definitions.js';
import { bruteForce, includedKeys, localReference } from './independent-evaluator.js';

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
