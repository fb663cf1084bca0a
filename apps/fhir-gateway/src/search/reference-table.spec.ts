/**
 * Chains find their outer candidates through the plaintext link table resource_reference (search.service.ts,
 * resolveChain), which is written from collectReferences(). That is only sound if the table holds every
 * reference a reference parameter can match through its "r|Type/id" tokens: a link missing there would
 * drop a match silently, before any re-check could see it. This proves it on the generated corpus of the
 * FHIRPath equivalence test (every R4 resource type, every element the expressions read, references of
 * seven kinds: relative, other type, absolute, contained, logical, versioned, urn:uuid) and on hand-written
 * edge cases: for every indexed reference parameter of every resource, each value its expression yields
 * that holds a local reference (parseReference, exactly as the index's "r|" tokens read it) is among
 * collectReferences() of the stored resource.
 */
import { describe, expect, it } from 'vitest';
import { generateCorpus, type Res } from '../../../../test/support/fhirpath-equivalence.js';
import {
  collectReferences,
  parseReference,
  withServerMeta,
  type AnyResource,
} from '../fhir/resource-json.js';
import { indexedParams } from './search-params.js';
import { valueTokens } from './search-tokens.js';

interface Gap {
  type: string;
  param: string;
  reference: string;
}

/** The local references each reference parameter yields that collectReferences misses, and how many there were. */
function check(resources: readonly Res[]): {
  gaps: Gap[];
  checked: number;
  kinds: Set<string>;
  params: Set<string>;
  all: Set<string>;
} {
  const gaps: Gap[] = [];
  const params = new Set<string>();
  const all = new Set<string>();
  const kinds = new Set<string>();
  let checked = 0;
  for (const r of resources) {
    // What the repository stores: the resource with the server's meta, as resource.service.ts writes it.
    const stored = withServerMeta(r as AnyResource, r.id ?? 'x', 1, '2024-01-01T00:00:00Z');
    const links = new Set(collectReferences(stored).map((l) => `${l.type}/${l.id}`));
    for (const p of indexedParams(r.resourceType).values()) {
      if (p.type !== 'reference') continue;
      all.add(`${r.resourceType}.${p.code}`);
      let values: unknown[];
      try {
        values = p.expr.evaluate(stored);
      } catch {
        continue; // the index skips a parameter whose expression fails, so it has no tokens to miss
      }
      for (const v of values) {
        // The "r|" tokens the index makes of this value are the links a chain may need.
        for (const t of valueTokens('reference', v)) {
          if (!t.startsWith('r|')) continue;
          const ref = (v as { reference: string }).reference;
          const local = parseReference(ref)!;
          expect(t).toBe(`r|${local.type}/${local.id}`);
          checked++;
          params.add(`${r.resourceType}.${p.code}`);
          kinds.add(ref.includes('/_history/') ? 'versioned' : 'relative');
          if (!links.has(`${local.type}/${local.id}`))
            gaps.push({ type: r.resourceType, param: p.code, reference: ref });
        }
      }
    }
  }
  return { gaps, checked, kinds, params, all };
}

describe('resource_reference holds every reference a reference parameter matches', () => {
  it('on the generated corpus (every R4 resource type, seven kinds of reference)', () => {
    const corpus = generateCorpus(8);
    const { gaps, checked, kinds, params, all } = check(corpus);
    console.log(
      `reference table: ${corpus.length} resources, ${checked} local references checked, ` +
        `${params.size} of ${all.size} reference parameters yield one`,
    );
    expect(checked).toBeGreaterThan(2_000);
    expect([...kinds].sort()).toEqual(['relative', 'versioned']);
    expect(gaps.slice(0, 10)).toEqual([]);
  });

  it('on hand-written edge cases: contained, Bundle entries, extensions, versioned, absolute, urn', () => {
    const cases: Res[] = [
      {
        resourceType: 'Observation',
        id: 'o1',
        status: 'final',
        code: { text: 'x' },
        // A contained target whose own references the link table does not record: no parameter of the
        // container reaches them, the contained reference "#p" itself is not local.
        contained: [
          {
            resourceType: 'Patient',
            id: 'p',
            generalPractitioner: [{ reference: 'Practitioner/in-contained' }],
            link: [{ other: { reference: 'Patient/in-contained' }, type: 'seealso' }],
          },
        ],
        subject: { reference: '#p' },
        performer: [
          { reference: 'Practitioner/pr1/_history/3' },
          { reference: 'http://other.example/fhir/Practitioner/pr2' },
          { reference: 'urn:uuid:3f1a0c2e-6b7d-4a1e-9c0f-1d2e3f4a5b6c' },
          { type: 'Organization', identifier: { system: 'http://ids', value: 'o9' } },
          { reference: 'Organization/org1' },
        ],
        hasMember: [{ reference: 'Observation/o2' }],
        derivedFrom: [{ reference: 'DocumentReference/d1' }],
        focus: [{ reference: 'Patient/pat-focus' }],
        encounter: { reference: 'Encounter/e1' },
        basedOn: [{ reference: 'ServiceRequest/sr1/_history/1' }],
        partOf: [{ reference: 'Procedure/pc1' }],
        device: { reference: 'Device/dev1' },
        specimen: { reference: 'Specimen/sp1' },
        extension: [{ url: 'http://ext', valueReference: { reference: 'Patient/in-extension' } }],
      },
      {
        resourceType: 'Bundle',
        id: 'b1',
        type: 'document',
        entry: [
          {
            fullUrl: 'urn:uuid:3f1a0c2e-6b7d-4a1e-9c0f-1d2e3f4a5b6d',
            resource: {
              resourceType: 'Composition',
              id: 'c1',
              status: 'final',
              type: { text: 't' },
              date: '2024-01-01',
              title: 't',
              subject: { reference: 'Patient/in-bundle' },
              author: [{ reference: 'Practitioner/author' }],
            },
          },
          {
            resource: {
              resourceType: 'MessageHeader',
              id: 'm1',
              eventCoding: { code: 'x' },
              source: { endpoint: 'http://x' },
              focus: [{ reference: 'Patient/message-focus' }],
            },
          },
        ],
      },
      {
        resourceType: 'Provenance',
        id: 'pv1',
        recorded: '2024-01-01T00:00:00Z',
        target: [{ reference: 'Patient/t1/_history/7' }, { reference: 'Observation/o1' }],
        agent: [{ who: { reference: 'Practitioner/w1' }, onBehalfOf: { reference: 'Organization/ob1' } }],
        entity: [{ role: 'source', what: { reference: 'DocumentReference/what1' } }],
        location: { reference: 'Location/l1' },
      },
      {
        resourceType: 'Patient',
        id: 'pt1',
        generalPractitioner: [{ reference: 'Practitioner/gp1' }, { reference: 'Organization/gp-org' }],
        managingOrganization: { reference: 'Organization/mo1' },
        link: [{ other: { reference: 'RelatedPerson/rp1' }, type: 'seealso' }],
      },
      {
        resourceType: 'Group',
        id: 'g1',
        type: 'person',
        actual: true,
        member: [{ entity: { reference: 'Patient/member1' } }, { entity: { reference: 'Patient/member2' } }],
        managingEntity: { reference: 'Organization/manager' },
      },
      {
        resourceType: 'List',
        id: 'l1',
        status: 'current',
        mode: 'working',
        subject: { reference: 'Patient/list-subject' },
        entry: [{ item: { reference: 'MedicationStatement/ms1' } }],
      },
    ];
    const { gaps, checked } = check(cases);
    expect(checked).toBeGreaterThan(25);
    expect(gaps).toEqual([]);
  });
});
