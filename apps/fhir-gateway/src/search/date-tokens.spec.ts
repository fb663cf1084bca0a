import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { coverTokens, endpointTokens } from './date-tokens.js';

describe('date tokens', () => {
  it('index an endpoint at its own precision', () => {
    const c = ['c:19', 'e:198'];
    expect(endpointTokens('1980')).toEqual([...c, 'y:1980', 'Y:1980']);
    expect(endpointTokens('1980-05')).toEqual([...c, 'y:1980', 'm:1980-05', 'M:1980-05']);
    expect(endpointTokens('1980-05-03')).toEqual([...c, 'y:1980', 'm:1980-05', 'd:1980-05-03']);
    expect(endpointTokens('1989-12-31T23:30:00-05:00')).toEqual([
      'c:19',
      'e:199',
      'y:1990',
      'm:1990-01',
      'd:1990-01-01',
    ]);
  });

  it('cover open and long ranges with centuries and decades, not one token per year', () => {
    expect(coverTokens(Date.UTC(1900, 0, 1), Date.UTC(2000, 0, 1))).toEqual(['c:19']);
    expect(coverTokens(Date.UTC(1990, 0, 1), Date.UTC(2010, 0, 1))).toEqual(['e:199', 'e:200']);
    expect(coverTokens(Date.UTC(2023, 5, 1), undefined).length).toBeLessThan(30);
    expect(coverTokens(undefined, Date.UTC(1990, 0, 1)).length).toBeLessThan(15);
  });

  it('cover every instant of the query range (property)', () => {
    const day = 86_400_000;
    const t0 = Date.UTC(1990, 0, 1);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 20_000 }),
        fc.integer({ min: 1, max: 3_000 }),
        fc.integer({ min: 0, max: 20_000 }),
        (a, len, p) => {
          const start = t0 + a * day * 0.5;
          const end = start + len * day * 0.37;
          const cover = new Set(coverTokens(start, end));
          // A day-precision value inside the range always has a token in the cover.
          const inside = new Date(start + ((end - start) * (p % 1000)) / 1000);
          const iso = inside.toISOString().slice(0, 10);
          expect(endpointTokens(iso).some((t) => cover.has(t))).toBe(true);
          // And a year-precision value of an overlapping year too.
          expect(endpointTokens(String(inside.getUTCFullYear())).some((t) => cover.has(t))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keep covers short', () => {
    expect(coverTokens(Date.UTC(2020, 5, 15), undefined).length).toBeLessThan(260);
    expect(coverTokens(Date.UTC(2020, 0, 1), Date.UTC(2021, 0, 1))).toEqual(['y:2020']);
  });
});
