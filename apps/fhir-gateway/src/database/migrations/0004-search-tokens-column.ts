import type { Migration } from '../migrator.js';

/**
 * Blind-index tokens move from one row per token (search_token) to one bigint[] per current resource with a
 * GIN index. A token is a 64-bit truncated HMAC (docs/ENCRYPTION.md), so it fits a bigint exactly; the GIN
 * posting lists compress the many resources that share a token, and a write touches one row instead of
 * dozens. Existing tokens are carried over unchanged (same bytes, read as a signed 64-bit integer).
 *
 * gin_pending_list_limit (kB) bounds how much unsorted pending-list a query may have to scan between
 * cleanups (https://www.postgresql.org/docs/current/gin.html#GIN-FAST-UPDATE).
 */
export const migration0004: Migration = {
  id: '0004-search-tokens-column',
  sql: `
ALTER TABLE resource ADD COLUMN search_tokens bigint[];
UPDATE resource r SET search_tokens = s.tokens
  FROM (SELECT resource_type, id, array_agg(('x' || encode(token, 'hex'))::bit(64)::bigint) AS tokens
          FROM search_token GROUP BY resource_type, id) s
 WHERE r.resource_type = s.resource_type AND r.id = s.id;
DROP TABLE search_token;
CREATE INDEX resource_search_tokens ON resource USING gin (search_tokens)
  WITH (fastupdate = on, gin_pending_list_limit = 512);
-- Which token scheme (search/search-tokens.ts SEARCH_INDEX_VERSION) the stored tokens follow; the gateway
-- re-indexes at start when the code's scheme is newer. Version 1 is the scheme search_token held.
CREATE TABLE search_index_state (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  version   integer NOT NULL
);
INSERT INTO search_index_state (version) VALUES (1);
`,
};
