/**
 * Issue #3: search values are extracted with Medplum's FHIRPath evaluator. This proves it equal to HL7's
 * reference JavaScript engine (npm "fhirpath", fhirpath.js, R4 model) on every indexed parameter's
 * expression, exactly as the index evaluates it (forType-reduced, composite components on each element),
 * over a corpus generated here from the R4 StructureDefinitions (no ../shared): for every resource type,
 * resources that fill each element the type's expressions read, with every choice type the expressions ask
 * for, several array entries, where(x = 'literal') entries that match and that do not, references of seven
 * kinds (relative, other type, absolute, contained, logical, versioned, urn:uuid) and primitive extensions.
 *
 * Equality is asserted on everything but KNOWN_DISAGREEMENTS (test/support/fhirpath-equivalence.ts), the
 * commented list of understood differences, each with the engine the specification sides with: a new
 * disagreement fails here. The Synthea run is scripts/fhirpath-compare.ts (manual).
 */
import { describe, expect, it } from 'vitest';
import {
  compareResource,
  explain,
  generateCorpus,
  KNOWN_DISAGREEMENTS,
  newTally,
  setup,
  type Disagreement,
  type Res,
} from '../../../../test/support/fhirpath-equivalence.js';

/** Resources per type: enough for every choice type, reference kind and extension mode to occur. */
const VARIANTS = 8;

describe('Medplum FHIRPath = fhirpath.js on the search parameter expressions', () => {
  const tally = newTally();
  const corpus = generateCorpus(VARIANTS);
  for (const r of corpus) compareResource(r, tally);
  const unexplained = tally.disagreements.filter((d) => !explain(d));
  const byKnown = new Map<string, number>();
  for (const d of tally.disagreements)
    for (const k of explain(d) ?? []) byKnown.set(k.id, (byKnown.get(k.id) ?? 0) + 1);

  it('agrees on every evaluation but the known disagreements', () => {
    console.log(
      `fhirpath equivalence (generated): ${tally.expressions.size} expressions, ${tally.resources} resources, ` +
        `${tally.evaluations} evaluations (${tally.nonEmpty} non-empty), ${tally.disagreements.length} ` +
        `disagreements, all known: ${JSON.stringify(Object.fromEntries(byKnown))}`,
    );
    expect(unexplained.slice(0, 5).map(describeDisagreement)).toEqual([]);
    expect(unexplained.length).toBe(0);
  });

  it('covers every resource type and every expression with a non-empty result', () => {
    expect(new Set(corpus.map((r) => r.resourceType)).size).toBe(setup().size);
    expect([...tally.expressions].filter((e) => !tally.covered.has(e)).map((e) => e.split('\u0000'))).toEqual(
      [],
    );
  });

  it('still sees every known disagreement (a fixed one must leave the list)', () => {
    expect(KNOWN_DISAGREEMENTS.map((k) => k.id).filter((id) => !byKnown.has(id))).toEqual([]);
  });
});

/**
 * Each known disagreement on its smallest input, with both outputs: the record of what differs. The
 * reference https://hl7.org/fhirpath/N1/ is FHIRPath; FHIR R4 fhirpath.html adds resolve() and %resource.
 */
describe('known disagreements, each on a minimal input', () => {
  setup();
  const ext = { extension: [{ url: 'http://example.org/ext', valueString: 'x' }] };
  const cases: { id: string; resource: Res; code: string; medplum: unknown; hl7: unknown }[] = [
    {
      id: 'resolve-absolute-url',
      resource: { resourceType: 'Observation', subject: { reference: 'http://example.org/fhir/Patient/1' } },
      code: 'patient', // Observation.subject.where(resolve() is Patient)
      medplum: [],
      hl7: [{ reference: 'http://example.org/fhir/Patient/1' }],
    },
    {
      id: 'resolve-contained',
      resource: {
        resourceType: 'Observation',
        contained: [{ resourceType: 'Patient', id: 'p1' }],
        subject: { reference: '#p1' },
      },
      code: 'patient',
      medplum: [],
      hl7: [{ reference: '#p1' }],
    },
    {
      id: 'resolve-logical-identifier',
      resource: { resourceType: 'Observation', subject: { type: 'Patient', identifier: { value: '1' } } },
      code: 'patient',
      medplum: [{ type: 'Patient', identifier: { value: '1' } }],
      hl7: [],
    },
    {
      id: 'union-complex-duplicates',
      resource: {
        resourceType: 'AuditEvent',
        agent: [{ who: { reference: 'Patient/1' } }],
        entity: [{ what: { reference: 'Patient/1' } }],
      },
      code: 'patient', // AuditEvent.agent.who.where(resolve() is Patient) | AuditEvent.entity.what.where(...)
      medplum: [{ reference: 'Patient/1' }, { reference: 'Patient/1' }],
      hl7: [{ reference: 'Patient/1' }],
    },
    {
      id: 'union-extended-primitive',
      resource: { resourceType: 'Location', name: 'A', _name: ext, alias: ['A'] },
      code: 'name', // Location.name | Location.alias
      medplum: ['A'],
      hl7: ['A', 'A'],
    },
    {
      id: 'primitive-without-value',
      resource: { resourceType: 'Patient', _birthDate: ext },
      code: 'birthdate', // Patient.birthDate
      medplum: [ext],
      hl7: [],
    },
    {
      id: 'oftype-subtype',
      resource: { resourceType: 'ConceptMap', status: 'draft', sourceCanonical: 'http://example.org/vs' },
      code: 'source-uri', // (ConceptMap.source.ofType(uri))
      medplum: [],
      hl7: ['http://example.org/vs'],
    },
    {
      id: 'component-resource-variable',
      resource: {
        resourceType: 'MolecularSequence',
        coordinateSystem: 0,
        referenceSeq: { chromosome: { text: '1' } },
        variant: [{ start: 1, end: 2 }],
      },
      code: 'chromosome-variant-coordinate', // component %resource.referenceSeq.chromosome on each variant
      medplum: {
        error: 'FhirPathError on "%resource.referenceSeq.chromosome": Error: Undefined variable %resource',
      },
      hl7: [{ text: '1' }],
    },
  ];

  it('lists every known disagreement once', () => {
    expect(cases.map((c) => c.id).sort()).toEqual(KNOWN_DISAGREEMENTS.map((k) => k.id).sort());
  });

  for (const c of cases) {
    it(c.id, () => {
      const tally = newTally();
      compareResource({ id: 'x', ...c.resource }, tally);
      const found = tally.disagreements.filter((d) => d.code === c.code);
      expect(found).toHaveLength(1);
      const d = found[0]!;
      expect({ medplum: d.medplum, hl7: d.hl7 }).toEqual({ medplum: c.medplum, hl7: c.hl7 });
      expect(explain(d)?.map((k) => k.id)).toEqual([c.id]);
    });
  }
});

function describeDisagreement(d: Disagreement): string {
  return (
    `${d.resourceType}.${d.code} ${d.expression}${d.component ? ` :: ${d.component}` : ''} on ` +
    `${JSON.stringify(d.input).slice(0, 300)}: medplum ${JSON.stringify(d.medplum).slice(0, 300)}, ` +
    `fhirpath.js ${JSON.stringify(d.hl7).slice(0, 300)}`
  );
}
