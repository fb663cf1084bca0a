import { describe, expect, it } from 'vitest';
import { parseStored, serializeBody } from './stored-json.js';

describe('stored JSON in responses', () => {
  // Spacing no serialiser would produce, so the test sees whether the stored bytes went out as they are.
  const bytes = Buffer.from('{"resourceType":"Patient",  "id":"p1","name":[{"family":"Ünïcode"}]}');

  it('writes a Bundle entry around the stored bytes of an unchanged resource', () => {
    const r = parseStored(bytes);
    const other = { resourceType: 'OperationOutcome', issue: [{ severity: 'warning', code: 'too-costly' }] };
    const bundle = {
      resourceType: 'Bundle',
      type: 'searchset',
      total: 2,
      link: [{ relation: 'self', url: 'http://h/fhir/Patient?x=1' }],
      entry: [
        { fullUrl: 'http://h/fhir/Patient/p1', resource: r, search: { mode: 'match' } },
        { resource: other, search: { mode: 'outcome' }, response: undefined },
      ],
    };
    const out = serializeBody(bundle);
    expect(Buffer.isBuffer(out)).toBe(true);
    expect(out.toString('utf8')).toContain(bytes.toString('utf8'));
    expect(JSON.parse(out.toString('utf8'))).toEqual(JSON.parse(JSON.stringify(bundle)));
  });

  it('serialises anything else as JSON.stringify does', () => {
    const copy = { ...parseStored(bytes), gender: 'other' };
    const bundle = { resourceType: 'Bundle', type: 'searchset', entry: [{ resource: copy }] };
    expect(serializeBody(bundle)).toBe(JSON.stringify(bundle));
    expect(serializeBody({ resourceType: 'Patient', id: 'x' })).toBe('{"resourceType":"Patient","id":"x"}');
    expect(serializeBody({ resourceType: 'Bundle', type: 'searchset' })).toBe(
      '{"resourceType":"Bundle","type":"searchset"}',
    );
  });

  it('freezes the parsed resource, so a change cannot be silently dropped', () => {
    const r = parseStored(bytes) as { id?: string };
    expect(() => {
      r.id = 'changed';
    }).toThrow(TypeError);
  });
});
