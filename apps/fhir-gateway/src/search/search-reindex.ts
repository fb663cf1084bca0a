import type { ResourceStore } from '../store/resource.store.js';
import { loadR4Definitions } from '../fhir/definitions.js';
import { patientCompartments, type AnyResource } from '../fhir/resource-json.js';
import type { SearchIndex } from './search-index.js';

/**
 * The token scheme of search-tokens.ts, date-tokens.ts and number-tokens.ts. Bump it whenever what is
 * indexed for a value changes: the gateway then re-indexes every current resource at start, so a query
 * never misses a resource indexed under an older scheme.
 *   1: the first increment (search_token rows)
 *   2: presence, :text, :of-type, :identifier, uri prefixes, numbers, quantities, date decades and centuries
 *   3: per-patient keys for the parameters of patient-scope.ts
 *   4: overflow date tokens before 1800 and from 2200
 *   5: expressions evaluated as fhirpath.js does (param-expression.ts): where(resolve() is T) keeps absolute
 *      and contained references and drops logical ones; ofType(uri) keeps canonical, url, oid and uuid
 *   6: string prefixes up to 4 characters also per id band (id-bands.ts)
 */
export const SEARCH_INDEX_VERSION = 6;

/**
 * Re-indexes every current resource when the stored tokens follow an older scheme, in batches, each
 * resource under the version it was read at (a concurrent write keeps its own, newer tokens).
 * Returns how many resources were re-indexed.
 */
export async function reindexIfStale(
  store: ResourceStore,
  index: SearchIndex,
  log: (msg: string, fields: Record<string, unknown>) => void = () => undefined,
): Promise<number> {
  const stored = await store.repo.searchIndexVersion();
  if (stored >= SEARCH_INDEX_VERSION) return 0;
  await index.ready();
  const defs = loadR4Definitions();
  const started = Date.now();
  let after: { type: string; id: string } | undefined;
  let n = 0;
  for (;;) {
    const batch = await store.repo.listCurrent(after, 500);
    if (batch.length === 0) break;
    await store.write(async (repo) => {
      for (const v of batch) {
        const resource = JSON.parse(v.json!.toString('utf8')) as AnyResource;
        const compartments = patientCompartments(defs, resource, v.id);
        const tokens = index.tokensOf(resource, compartments).map((t) => t.token);
        await repo.setSearchTokens(v.resourceType, v.id, v.versionId, tokens);
      }
    }, []);
    n += batch.length;
    const last = batch[batch.length - 1]!;
    after = { type: last.resourceType, id: last.id };
    log('search index: re-indexing', { done: n });
  }
  await store.repo.setSearchIndexVersion(SEARCH_INDEX_VERSION);
  log('search index: re-indexed', {
    from: stored,
    to: SEARCH_INDEX_VERSION,
    resources: n,
    ms: Date.now() - started,
  });
  return n;
}
