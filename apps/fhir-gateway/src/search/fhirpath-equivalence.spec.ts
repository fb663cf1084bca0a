/**
 * Issue #3: search values are extracted with Medplum's FHIRPath evaluator, corrected where it departs from
 * the specification (param-expression.ts). This proves the result equal to HL7's reference JavaScript
 * engine (npm "fhirpath", fhirpath.js, R4 model) on every indexed parameter's expression, exactly as the
 * index evaluates it (forType-reduced, composite components on each element), over a corpus generated here
 * from the R4 StructureDefinitions (no ../shared): for every resource type, resources that fill each element
 * the type's expressions read, with every choice type the expressions ask for, several array entries,
 * where(x = 'literal') entries that match and that do not, references of seven kinds (relative, other type,
 * absolute, contained, logical, versioned, urn:uuid) and primitive extensions.
 *
 * Two assertions: the index tokens made from both sides' values are equal on every evaluation, with no
 * exception; and the values themselves are equal but for KNOWN_DISAGREEMENTS (test/support/
 * fhirpath-equivalence.ts), the commented list of understood differences that change no token. The Synthea
 * run is scripts/fhirpath-compare.ts (manual).
 */
import { evalFhirPath } from '@medplum/core';
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
import { ParamExpression } from './param-expression.js';
import { indexedParams } from './search-params.js';

/** Resources per type: enough for every choice type, reference kind and extension mode to occur. */
const VARIANTS = 8;

describe("the gateway's FHIRPath = fhirpath.js on the search parameter expressions", () => {
  const tally = newTally();
  const corpus = generateCorpus(VARIANTS);
  for (const r of corpus) compareResource(r, tally);
  const unexplained = tally.disagreements.filter((d) => !explain(d));
  const byKnown = new Map<string, number>();
  for (const d of tally.disagreements)
    for (const k of explain(d) ?? []) byKnown.set(k.id, (byKnown.get(k.id) ?? 0) + 1);

  it('builds the same index tokens from both, on every evaluation', () => {
    console.log(
      `fhirpath equivalence (generated): ${tally.expressions.size} expressions, ${tally.resources} resources, ` +
        `${tally.evaluations} evaluations (${tally.nonEmpty} non-empty), ${tally.tokens} index tokens, ` +
        `${tally.tokenDisagreements.length} token disagreements; ${tally.disagreements.length} value ` +
        `disagreements, all known: ${JSON.stringify(Object.fromEntries(byKnown))}`,
    );
    expect(tally.tokens).toBeGreaterThan(10_000);
    expect(tally.tokenDisagreements.slice(0, 5)).toEqual([]);
  });

  it('agrees on every value but the known disagreements', () => {
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
 * Where Medplum's evaluator alone departs from the specification and param-expression.ts corrects it: on
 * each minimal input, plain Medplum gives `medplum`, while the gateway and fhirpath.js both give `spec`.
 */
describe('corrections to Medplum, each on a minimal input', () => {
  setup();
  const ext = { extension: [{ url: 'http://example.org/ext', valueString: 'x' }] };
  const cases: { name: string; resource: Res; code: string; medplum: unknown; spec: unknown }[] = [
    {
      // FHIR R4 references.html#literal: an absolute URL names the type too.
      name: 'resolve() of an absolute literal reference',
      resource: { resourceType: 'Observation', subject: { reference: 'http://example.org/fhir/Patient/1' } },
      code: 'patient', // Observation.subject.where(resolve() is Patient)
      medplum: [],
      spec: [{ reference: 'http://example.org/fhir/Patient/1' }],
    },
    {
      // FHIR R4 references.html#contained.
      name: 'resolve() of a contained reference',
      resource: {
        resourceType: 'Observation',
        contained: [{ resourceType: 'Patient', id: 'p1' }],
        subject: { reference: '#p1' },
      },
      code: 'patient',
      medplum: [],
      spec: [{ reference: '#p1' }],
    },
    {
      // FHIR R4 fhirpath.html#functions: an item that does not resolve is ignored.
      name: 'resolve() of a logical reference (type + identifier only)',
      resource: { resourceType: 'Observation', subject: { type: 'Patient', identifier: { value: '1' } } },
      code: 'patient',
      medplum: [{ type: 'Patient', identifier: { value: '1' } }],
      spec: [],
    },
    {
      // FHIRPath N1 §6.3: ofType keeps subclasses; R4 canonical specialises uri.
      name: 'ofType(uri) on a canonical',
      resource: { resourceType: 'ConceptMap', status: 'draft', sourceCanonical: 'http://example.org/vs' },
      code: 'source-uri', // (ConceptMap.source.ofType(uri))
      medplum: [],
      spec: ['http://example.org/vs'],
    },
    {
      // FHIR R4 json.html#primitive: only an extension, no value.
      name: 'a primitive with an extension and no value',
      resource: { resourceType: 'Patient', _birthDate: ext },
      code: 'birthdate', // Patient.birthDate
      medplum: [ext],
      spec: [],
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const resource = { id: 'x', ...c.resource };
      const p = indexedParams(resource.resourceType).get(c.code)!;
      expect(evalFhirPath(p.expr.atom, resource)).toEqual(c.medplum);
      expect(p.expr.evaluate(resource)).toEqual(c.spec);
      const tally = newTally();
      compareResource(resource, tally);
      expect(tally.disagreements.filter((d) => d.code === c.code)).toEqual([]);
      expect(tally.tokenDisagreements).toEqual([]);
    });
  }

  it('a corrected branch keeps duplicates; only a union removes them (FHIRPath N1 §6.5)', () => {
    const ref = { reference: 'Patient/1' };
    const one: Res = { resourceType: 'Appointment', id: 'x', participant: [{ actor: ref }, { actor: ref }] };
    expect(indexedParams('Appointment').get('patient')!.expr.evaluate(one)).toEqual([ref, ref]);
    const two: Res = {
      resourceType: 'AuditEvent',
      id: 'y',
      agent: [{ who: ref }],
      entity: [{ what: ref }],
    };
    expect(indexedParams('AuditEvent').get('patient')!.expr.evaluate(two)).toEqual([ref]);
    for (const r of [one, two]) {
      const tally = newTally();
      compareResource(r, tally);
      expect(tally.disagreements.filter((d) => d.code === 'patient')).toEqual([]);
    }
  });

  it('reads a plain member path directly, as fhirpath.js navigates it (N1 §5.1, §5.2)', () => {
    const patient: Res = {
      resourceType: 'Patient',
      id: 'p',
      name: [
        { family: 'Ng', given: ['A', null, 'C'], _given: [null, { extension: [] }, null] },
        { text: 'x' },
      ],
      _birthDate: { extension: [{ url: 'http://example.org/x', valueString: 'unknown' }] },
      deceasedBoolean: false,
    };
    const given = indexedParams('Patient').get('given')!.expr;
    expect(given.evaluate(patient)).toEqual(['A', 'C']);
    expect((given as unknown as { path: unknown }).path).toMatchObject({ steps: ['name', 'given'] });
    expect(indexedParams('Patient').get('birthdate')!.expr.evaluate(patient)).toEqual([]);
    // A choice element is no plain path: effective[x] is read through the evaluator.
    const effective = new ParamExpression('Observation.effective', 'date');
    const obs: Res = { resourceType: 'Observation', id: 'o', effectiveDateTime: '2020-01-02' };
    expect(effective.evaluate(obs)).toEqual(['2020-01-02']);
    expect((effective as unknown as { path: unknown }).path).toBeNull();
    expect(
      indexedParams('Patient')
        .get('family')!
        .expr.evaluate({ resourceType: 'Person', name: [{ family: 'Ng' }] }),
    ).toEqual([]);
    const tally = newTally();
    compareResource(patient, tally);
    expect(tally.disagreements).toEqual([]);
  });

  it('%resource in a composite component (MolecularSequence coordinates)', () => {
    const resource: Res = {
      resourceType: 'MolecularSequence',
      id: 'x',
      coordinateSystem: 0,
      referenceSeq: { chromosome: { text: '1' } },
      variant: [{ start: 1, end: 2 }],
    };
    const p = indexedParams('MolecularSequence').get('chromosome-variant-coordinate')!;
    const chromosome = p.components![0]!;
    const variant = p.expr.evaluate(resource)[0];
    expect(() => evalFhirPath(chromosome.expr.atom, variant)).toThrow(/Undefined variable %resource/);
    expect(chromosome.expr.evaluate(variant, resource)).toEqual([{ text: '1' }]);
    const tally = newTally();
    compareResource(resource, tally);
    expect(tally.disagreements).toEqual([]);
  });
});

/**
 * Each known disagreement on its smallest input, with both outputs: the record of what differs. The
 * reference https://hl7.org/fhirpath/N1/ is FHIRPath; FHIR R4 fhirpath.html adds resolve() and %resource.
 */
describe('known disagreements, each on a minimal input', () => {
  setup();
  const ext = { extension: [{ url: 'http://example.org/ext', valueString: 'x' }] };
  const cases: { id: string; resource: Res; code: string; gateway: unknown; hl7: unknown }[] = [
    {
      id: 'union-complex-duplicates',
      resource: {
        resourceType: 'ImagingStudy',
        endpoint: [{ reference: 'Endpoint/1' }],
        series: [{ endpoint: [{ reference: 'Endpoint/1' }] }],
      },
      code: 'endpoint', // ImagingStudy.endpoint | ImagingStudy.series.endpoint
      gateway: [{ reference: 'Endpoint/1' }, { reference: 'Endpoint/1' }],
      hl7: [{ reference: 'Endpoint/1' }],
    },
    {
      id: 'union-extended-primitive',
      resource: { resourceType: 'Location', name: 'A', _name: ext, alias: ['A'] },
      code: 'name', // Location.name | Location.alias
      gateway: ['A'],
      hl7: ['A', 'A'],
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
      expect({ gateway: d.gateway, hl7: d.hl7 }).toEqual({ gateway: c.gateway, hl7: c.hl7 });
      expect(explain(d)?.map((k) => k.id)).toEqual([c.id]);
      expect(tally.tokenDisagreements).toEqual([]);
    });
  }
});

function describeDisagreement(d: Disagreement): string {
  return (
    `${d.resourceType}.${d.code} ${d.expression}${d.component ? ` :: ${d.component}` : ''} on ` +
    `${JSON.stringify(d.input).slice(0, 300)}: gateway ${JSON.stringify(d.gateway).slice(0, 300)}, ` +
    `fhirpath.js ${JSON.stringify(d.hl7).slice(0, 300)}`
  );
}
