import type { Migration } from '../migrator.js';

/**
 * Blind-index tokens for search (docs/ENCRYPTION.md): per resource, per search parameter, truncated HMACs of
 * normalised values. No plaintext value is stored.
 */
export const migration0003: Migration = {
  id: '0003-search',
  sql: `
CREATE TABLE search_token (
  resource_type text NOT NULL,
  id            text NOT NULL,
  param         text NOT NULL,
  token         bytea NOT NULL,
  PRIMARY KEY (resource_type, param, token, id)
);
CREATE INDEX search_token_resource ON search_token (resource_type, id);
`,
};
