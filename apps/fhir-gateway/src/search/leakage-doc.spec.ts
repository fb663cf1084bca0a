import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BlindIndexer } from '#crypto';
import { indexedParams } from './search-params.js';
import { MAX_SORT } from './search.service.js';
import { BANDED_PREFIX_MAX, PREFIX_LENGTHS, TEXT_PREFIX_LENGTHS } from './search-tokens.js';
import { ID_BANDS } from './id-bands.js';
import { loadR4Definitions } from '../fhir/definitions.js';

/** docs/ENCRYPTION.md states what the index reveals; these checks keep its figures equal to the code's. */
const doc = readFileSync(new URL('../../../../docs/ENCRYPTION.md', import.meta.url), 'utf8');
const spoken = (xs: readonly number[]) => `${xs.slice(0, -1).join(', ')} and ${xs[xs.length - 1]}`;

describe('docs/ENCRYPTION.md matches the code', () => {
  it('names the string and text prefix lengths the index uses', () => {
    expect(doc).toContain(`prefixes of ${spoken(PREFIX_LENGTHS)} characters`);
    expect(doc).toContain(`prefixes (${TEXT_PREFIX_LENGTHS.join(', ')} characters)`);
  });

  it('names the id bands and the prefixes indexed per band', () => {
    expect(doc).toContain(`prefixes of up to ${BANDED_PREFIX_MAX} characters once more per id band`);
    expect(doc).toContain(`prefixes of up to ${BANDED_PREFIX_MAX} characters are indexed a second time`);
    expect(doc).toContain(`one of ${ID_BANDS}\ncontiguous ranges of ids`);
  });

  it('names the token width and the sort cap', () => {
    expect(doc).toContain(`truncated to ${new BlindIndexer(Buffer.alloc(32)).widthBytes} bytes`);
    expect(doc).toContain(`at most ${MAX_SORT.toLocaleString('en-US')} of them`);
  });

  it('has a row for every parameter type the index covers', () => {
    loadR4Definitions();
    const types = new Set(
      [...indexedParams('Observation').values(), ...indexedParams('RiskAssessment').values()].map(
        (p) => p.type,
      ),
    );
    for (const t of types) expect(doc, t).toMatch(new RegExp(`\\n\\| ${t}[ (]`));
  });
});
