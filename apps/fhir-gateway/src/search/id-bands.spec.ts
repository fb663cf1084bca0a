import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bandStart, idBand, ID_BANDS } from './id-bands.js';

const ID_CHARS = '-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
/** FHIR ids: [A-Za-z0-9\-.]{1,64} (R4 datatypes.html#id). */
const fhirId = fc.string({ unit: fc.constantFrom(...ID_CHARS), minLength: 1, maxLength: 64 });
const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

describe('id bands', () => {
  it('are contiguous ranges of byte order: a larger id never has a smaller band', () => {
    fc.assert(
      fc.property(fhirId, fhirId, (a, b) => {
        const [lo, hi] = byteOrder(a, b) <= 0 ? [a, b] : [b, a];
        expect(idBand(lo)).toBeLessThanOrEqual(idBand(hi));
      }),
      { numRuns: 2000 },
    );
  });

  it('start at bandStart: every id lies between its band start and the next one', () => {
    fc.assert(
      fc.property(fhirId, (id) => {
        const band = idBand(id);
        expect(byteOrder(bandStart(band), id)).toBeLessThanOrEqual(0);
        if (band + 1 < ID_BANDS) expect(byteOrder(id, bandStart(band + 1))).toBeLessThan(0);
      }),
      { numRuns: 2000 },
    );
  });

  it('spread random UUIDs over all sixteen bands', () => {
    const counts = new Array<number>(ID_BANDS).fill(0);
    for (let i = 0; i < 1600; i++) counts[idBand(crypto.randomUUID())]!++;
    for (const n of counts) expect(n).toBeGreaterThan(50);
  });
});
