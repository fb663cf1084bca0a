import type { Migration } from '../migrator.js';

/**
 * Current resource ids compare in byte order (collation "C") whatever the database's locale. Search pages
 * in id order with `id > cursor` bounds, the id bands of the blind index (search/id-bands.ts) are ranges of
 * byte order, and the gateway compares ids in JavaScript (code-unit order, the same for FHIR's ASCII ids).
 * Under a linguistic collation (en_US.UTF-8, say) "-" is ignored and "A" sorts beside "a", so a band would
 * not be one range of the index. Databases created in the C or C.UTF-8 locale (PGlite, the CI server) keep
 * their order; only the primary key index is rebuilt.
 */
export const migration0005: Migration = {
  id: '0005-id-byte-order',
  sql: `ALTER TABLE resource ALTER COLUMN id TYPE text COLLATE "C";`,
};
