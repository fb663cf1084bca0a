import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from './canonical-json.js';

const json = fc.jsonValue({ maxDepth: 4 });

describe('canonicalJson', () => {
  it('is plain JSON that parses back to the same value', () => {
    fc.assert(
      fc.property(json, (v) => {
        // Compared with a JSON round trip: -0 becomes 0 in both, as RFC 8785 wants.
        expect(JSON.parse(canonicalJson(v))).toEqual(JSON.parse(JSON.stringify(v)));
      }),
    );
  });

  it('does not depend on key insertion order', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.integer()), (d) => {
        const reversed = Object.fromEntries(Object.entries(d).reverse());
        expect(canonicalJson(reversed)).toBe(canonicalJson(d));
      }),
    );
  });

  it('sorts keys by UTF-16 code units, drops undefined members, keeps nulls in arrays', () => {
    expect(canonicalJson({ b: 1, a: [undefined, null], é: true, Z: undefined, A: 'x' })).toBe(
      '{"A":"x","a":[null,null],"b":1,"é":true}',
    );
  });

  it('refuses values that JSON cannot carry faithfully', () => {
    expect(() => canonicalJson({ x: Number.NaN })).toThrow(TypeError);
    expect(() => canonicalJson(() => 1)).toThrow(TypeError);
  });
});
