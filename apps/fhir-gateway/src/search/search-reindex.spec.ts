import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestStorage, type TestStorage } from '../../../../test/support/storage.js';
import { testContext } from '../../../../test/support/test-context.js';
import { createFhirEngine } from '../fhir/fhir-engine.factory.js';
import type { FhirEngine } from '../fhir/fhir-engine.js';
import { SearchIndex } from './search-index.js';
import { reindexIfStale, SEARCH_INDEX_VERSION } from './search-reindex.js';

let storage: TestStorage;
let engine: FhirEngine;
const ctx = testContext();

async function familyIds(family: string): Promise<string[]> {
  const res = await engine.handle(ctx, {
    method: 'GET',
    path: 'Patient',
    query: { family: [family] },
    headers: {},
  });
  return ((res.body as any).entry ?? []).map((e: any) => e.resource.id).sort();
}

beforeAll(async () => {
  storage = await openTestStorage();
  engine = createFhirEngine(storage.store, 'http://h');
});
afterAll(async () => {
  await storage?.close();
});

describe('re-indexing under a newer token scheme', () => {
  it('rebuilds every current resource’s tokens once, then records the scheme', async () => {
    const ids: string[] = [];
    for (const family of ['Reindex', 'Reindexa', 'Other']) {
      const res = await engine.handle(ctx, {
        method: 'POST',
        path: 'Patient',
        query: {},
        headers: {},
        body: { resourceType: 'Patient', name: [{ family }] },
      });
      ids.push(JSON.parse((res.body as Buffer).toString()).id as string);
    }
    expect(await familyIds('reindex')).toEqual(ids.slice(0, 2).sort());
    // An index from an older scheme: tokens gone (the worst case), version behind.
    await storage.db.query('UPDATE resource SET search_tokens = NULL');
    await storage.db.query('UPDATE search_index_state SET version = 1');
    expect(await familyIds('reindex')).toEqual([]);

    const logged: Record<string, unknown>[] = [];
    const n = await reindexIfStale(storage.store, new SearchIndex(storage.keys), (_m, f) => logged.push(f));
    expect(n).toBe(3);
    expect(await familyIds('reindex')).toEqual(ids.slice(0, 2).sort());
    expect(logged.at(-1)).toMatchObject({ from: 1, to: SEARCH_INDEX_VERSION, resources: 3 });
    expect(await reindexIfStale(storage.store, new SearchIndex(storage.keys))).toBe(0);
  });
});
