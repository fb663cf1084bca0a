import { describe, expect, it } from 'vitest';
import { loadR4Definitions } from './definitions.js';

const defs = loadR4Definitions();
const paths = (r: object) =>
  defs.requiredBindings.check(r as { resourceType: string }).map((i) => i.expression?.[0]);

describe('required bindings', () => {
  it('accepts codes from the value set', () => {
    expect(paths({ resourceType: 'Patient', gender: 'female', name: [{ use: 'official' }] })).toEqual([]);
  });

  it('rejects codes outside it, at any depth, in arrays, choice types and contained resources', () => {
    expect(
      paths({
        resourceType: 'Observation',
        status: 'finalish',
        valueQuantity: { value: 1, comparator: '~' },
        contained: [{ resourceType: 'Patient', gender: 'x' }],
        component: [
          { code: { text: 'a' }, valueQuantity: { comparator: '<' } },
          { code: { text: 'b' }, valueQuantity: { comparator: '!' } },
        ],
      }),
    ).toEqual(
      expect.arrayContaining([
        'Observation.status',
        'Observation.valueQuantity.comparator',
        'Observation.contained[0].gender',
        'Observation.component[1].valueQuantity.comparator',
      ]),
    );
  });

  it('checks backbone elements and data types inside them', () => {
    expect(
      paths({
        resourceType: 'Patient',
        contact: [{ gender: 'male', name: { use: 'nickname' } }, { gender: 'nope' }],
      }),
    ).toEqual(['Patient.contact[1].gender']);
  });
});

describe('required bindings, edge cases found on the official examples', () => {
  it('allows null fillers in primitive arrays (R4 json.html#primitive)', () => {
    expect(
      paths({
        resourceType: 'PractitionerRole',
        availableTime: [
          {
            daysOfWeek: ['mon', null],
            _daysOfWeek: [null, { extension: [{ url: 'http://x', valueString: 'y' }] }],
          },
        ],
      }),
    ).toEqual([]);
  });

  it('rejects abstract codes and Object.prototype keys without crashing', () => {
    expect(
      paths({ resourceType: 'Questionnaire', status: 'draft', item: [{ linkId: '1', type: 'question' }] }),
    ).toEqual(['Questionnaire.item[0].type']);
    expect(paths({ resourceType: 'Patient', constructor: 'x' })).toEqual(['Patient.constructor']);
  });

  it('does not take R4B types for R4', () => {
    expect(defs.resourceTypes.has('SubscriptionStatus')).toBe(false);
    expect(defs.resourceTypes.has('Patient')).toBe(true);
  });
});
