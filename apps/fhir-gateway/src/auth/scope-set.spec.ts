import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FhirError } from '../fhir/outcomes.js';
import type { Interaction } from '../fhir/request-context.js';
import { INTERACTIONS, ScopeError, ScopeSet, parseScope } from './scope-set.js';

const types = fc.constantFrom('Patient', 'Observation', 'Encounter', 'Condition', '*');
const concreteTypes = fc.constantFrom('Patient', 'Observation', 'Encounter', 'Condition');
const interaction = fc.constantFrom<Interaction>(...INTERACTIONS);
const permissions = fc
  .subarray([...INTERACTIONS], { minLength: 1 })
  .map((xs) => INTERACTIONS.filter((i) => xs.includes(i)).join(''));
const scopeToken = fc.tuple(types, permissions).map(([t, p]) => `system/${t}.${p}`);
const scopeString = fc.array(scopeToken, { maxLength: 6 }).map((xs) => xs.join(' '));

describe('parseScope', () => {
  it.each([
    ['system/Patient.rs', { resourceType: 'Patient', permissions: 'rs' }],
    ['system/*.cruds', { resourceType: '*', permissions: 'cruds' }],
    ['system/Observation.r', { resourceType: 'Observation', permissions: 'r' }],
    ['system/Patient.read', { resourceType: 'Patient', permissions: 'rs' }],
    ['system/Patient.write', { resourceType: 'Patient', permissions: 'cud' }],
    ['system/*.*', { resourceType: '*', permissions: 'cruds' }],
    [
      'system/Observation.rs?category=laboratory',
      { resourceType: 'Observation', permissions: 'rs', query: 'category=laboratory' },
    ],
    [
      'system/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs',
      {
        resourceType: 'Observation',
        permissions: 'rs',
        query: 'category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs',
      },
    ],
  ])('parses %s', (token, expected) => {
    expect(parseScope(token)).toEqual(expected);
  });

  it.each([
    'system/Patient.sr', // v2 permissions must be in cruds order
    'system/Patient.rr',
    'system/Patient.',
    'system/Patient.x',
    'system/patient.rs', // resource types start upper-case
    'patient/Patient.rs', // no patient context in backend services
    'user/*.cruds',
    'system/Patient',
    'system/Patient.rs?',
    'system/Patient.rs?name',
    'openid',
    'launch',
    '',
    'system/*.read?',
  ])('rejects %j', (token) => {
    expect(parseScope(token)).toBeUndefined();
  });
});

describe('ScopeSet', () => {
  it('allows exactly the granted interactions on the granted type', () => {
    const s = ScopeSet.parse('system/Patient.rs system/Observation.c');
    expect(s.allows('Patient', 'r')).toBe(true);
    expect(s.allows('Patient', 's')).toBe(true);
    expect(s.allows('Patient', 'c')).toBe(false);
    expect(s.allows('Patient', 'u')).toBe(false);
    expect(s.allows('Patient', 'd')).toBe(false);
    expect(s.allows('Observation', 'c')).toBe(true);
    expect(s.allows('Observation', 'r')).toBe(false);
    expect(s.allows('Encounter', 'r')).toBe(false);
  });

  it('a wildcard type covers every type', () => {
    const s = ScopeSet.parse('system/*.rs');
    expect(s.allows('Patient', 'r')).toBe(true);
    expect(s.allows('Basic', 's')).toBe(true);
    expect(s.allows('Basic', 'u')).toBe(false);
  });

  it('v1 and v2 spellings grant the same', () => {
    fc.assert(
      fc.property(concreteTypes, interaction, (t, i) => {
        expect(ScopeSet.parse(`system/${t}.read`).allows(t, i)).toBe(
          ScopeSet.parse(`system/${t}.rs`).allows(t, i),
        );
        expect(ScopeSet.parse(`system/${t}.write`).allows(t, i)).toBe(
          ScopeSet.parse(`system/${t}.cud`).allows(t, i),
        );
        expect(ScopeSet.parse(`system/${t}.*`).allows(t, i)).toBe(true);
      }),
    );
  });

  it('query-restricted scopes grant nothing at type level but are reported as restrictions', () => {
    const s = ScopeSet.parse('system/Observation.rs?category=laboratory');
    expect(s.isEmpty()).toBe(false);
    expect(s.allows('Observation', 'r')).toBe(false);
    expect(s.allows('Observation', 's')).toBe(false);
    expect(s.restrictionsFor('Observation', 's')).toEqual(['category=laboratory']);
    expect(s.restrictionsFor('Observation', 'c')).toEqual([]);
    expect(s.restrictionsFor('Patient', 's')).toEqual([]);
    const both = ScopeSet.parse('system/Observation.rs?category=laboratory system/Observation.r');
    expect(both.allows('Observation', 'r')).toBe(true);
    expect(both.allows('Observation', 's')).toBe(false);
  });

  it('ignores tokens that are not system scopes, and grants nothing for them', () => {
    const s = ScopeSet.parse('openid  patient/*.rs system/Patient.r   launch');
    expect(s.ignored).toEqual(['openid', 'patient/*.rs', 'launch']);
    expect(s.toString()).toBe('system/Patient.r');
    expect(s.allows('Observation', 'r')).toBe(false);
  });

  it('an empty or missing scope allows nothing', () => {
    for (const s of [ScopeSet.parse(undefined), ScopeSet.parse(''), ScopeSet.empty()]) {
      expect(s.isEmpty()).toBe(true);
      expect(s.allows('Patient', 'r')).toBe(false);
    }
  });

  it('parseStrict rejects any unknown token', () => {
    expect(() => ScopeSet.parseStrict('system/*.cruds typo/Patient.rs')).toThrow(ScopeError);
    expect(() => ScopeSet.parseStrict('')).toThrow(ScopeError);
    expect(ScopeSet.parseStrict('system/*.cruds').toString()).toBe('system/*.cruds');
  });

  it('assertAllows throws a forbidden FhirError naming the interaction', () => {
    const s = ScopeSet.parse('system/Patient.r');
    expect(() => s.assertAllows('Patient', 'r')).not.toThrow();
    try {
      s.assertAllows('Patient', 'd');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(FhirError);
      expect((err as FhirError).status).toBe(403);
      expect((err as FhirError).message).toContain('delete on Patient');
    }
    expect(() => s.assertAllows('<script>', 'r')).toThrow(/this resource type/);
  });

  it('merges duplicate scopes into canonical form', () => {
    expect(ScopeSet.parse('system/Patient.r system/Patient.s system/Patient.rs').toString()).toBe(
      'system/Patient.rs',
    );
    expect(ScopeSet.parse('system/Patient.read system/Patient.write').toString()).toBe(
      'system/Patient.cruds',
    );
  });

  it('round-trips through toString', () => {
    fc.assert(
      fc.property(scopeString, (str) => {
        const s = ScopeSet.parse(str);
        const again = ScopeSet.parse(s.toString());
        expect(again.toString()).toBe(s.toString());
      }),
    );
  });

  describe('intersect', () => {
    it('narrows a wildcard request to what the client is registered for', () => {
      const granted = ScopeSet.parse('system/*.cruds').intersect(
        ScopeSet.parse('system/Patient.rs system/Observation.r'),
      );
      expect(granted.toString()).toBe('system/Patient.rs system/Observation.r');
    });

    it('narrows a broad registration to what was asked', () => {
      const granted = ScopeSet.parse('system/Patient.read').intersect(ScopeSet.parse('system/*.cruds'));
      expect(granted.toString()).toBe('system/Patient.rs');
    });

    it('keeps a restriction from either side and drops conflicting ones', () => {
      const allowed = ScopeSet.parse('system/Observation.rs?category=laboratory');
      expect(ScopeSet.parse('system/*.rs').intersect(allowed).toString()).toBe(
        'system/Observation.rs?category=laboratory',
      );
      expect(ScopeSet.parse('system/Observation.rs?category=vital-signs').intersect(allowed).isEmpty()).toBe(
        true,
      );
      expect(
        ScopeSet.parse('system/Observation.r?code=1234')
          .intersect(ScopeSet.parse('system/*.cruds'))
          .toString(),
      ).toBe('system/Observation.r?code=1234');
    });

    it('is empty when nothing overlaps', () => {
      expect(
        ScopeSet.parse('system/Patient.c').intersect(ScopeSet.parse('system/Patient.rs')).isEmpty(),
      ).toBe(true);
      expect(
        ScopeSet.parse('system/Patient.rs').intersect(ScopeSet.parse('system/Encounter.rs')).isEmpty(),
      ).toBe(true);
    });

    it('never allows more than either side (property)', () => {
      fc.assert(
        fc.property(scopeString, scopeString, concreteTypes, interaction, (a, b, t, i) => {
          const sa = ScopeSet.parse(a);
          const sb = ScopeSet.parse(b);
          const granted = sa.intersect(sb);
          expect(granted.allows(t, i)).toBe(sa.allows(t, i) && sb.allows(t, i));
        }),
      );
    });

    it('is idempotent and commutative in effect (property)', () => {
      fc.assert(
        fc.property(scopeString, scopeString, concreteTypes, interaction, (a, b, t, i) => {
          const sa = ScopeSet.parse(a);
          const sb = ScopeSet.parse(b);
          expect(sa.intersect(sa).allows(t, i)).toBe(sa.allows(t, i));
          expect(sa.intersect(sb).allows(t, i)).toBe(sb.intersect(sa).allows(t, i));
        }),
      );
    });
  });
});
