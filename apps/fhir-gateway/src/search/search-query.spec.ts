import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadR4Definitions } from '../fhir/definitions.js';
import { FhirError } from '../fhir/outcomes.js';
import { planSearch, splitValues } from './search-query.js';

loadR4Definitions();

const keys = fc.oneof(
  fc.constantFrom(
    'family',
    'name',
    'birthdate',
    'identifier',
    'gender',
    'general-practitioner',
    'organization',
    '_id',
    '_lastUpdated',
    '_count',
    '_total',
    '_summary',
    '_sort',
    'family:exact',
    'family:contains',
    'identifier:of-type',
    'general-practitioner:Practitioner',
    'link.name',
    'phonetic',
    'nonsense',
  ),
  fc.string({ maxLength: 12 }),
);
const values = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.constantFrom(
    'eq2020',
    'ge2020-01-01T10:00:00Z',
    'ap2020',
    'lt1990-13',
    'x|y|z',
    '\\,',
    ',',
    '',
    'Patient/123',
    'urn:x|',
    '|c',
    '0',
    '-1',
    '99999999',
  ),
);

describe('search query parser', () => {
  it('never crashes: every input is a plan, a 400 or a 501 OperationOutcome', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(keys, fc.array(values, { minLength: 1, maxLength: 3 })), { maxLength: 5 }),
        fc.boolean(),
        (pairs, strict) => {
          const query: Record<string, string[]> = {};
          for (const [k, vs] of pairs) query[k] = vs;
          try {
            const plan = planSearch('Patient', query, strict);
            expect(plan.count).toBeGreaterThan(0);
          } catch (err) {
            expect(err).toBeInstanceOf(FhirError);
            expect([400, 501]).toContain((err as FhirError).status);
            expect((err as FhirError).outcome.resourceType).toBe('OperationOutcome');
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('splits on unescaped commas only', () => {
    expect(splitValues('a,b\\,c,d')).toEqual(['a', 'b,c', 'd']);
  });
});
