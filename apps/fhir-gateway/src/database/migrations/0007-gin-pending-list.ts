import type { Migration } from '../migrator.js';

/**
 * A shorter GIN pending list for search_tokens: 64 kB (8 pages) instead of 512 kB. Every search through the
 * index reads the whole pending list, and the planner adds it to the index's cost. After 1,000 Patient
 * creates the list held 49 pages, so on a small table the planner chose a sequential scan instead (2.8 ms,
 * detoasting every row's tokens, against 0.05 ms through the index once the list was merged): the gateway
 * bench's identifier search fell from 3,000 to 550 requests/s. Writes merge the list into the index more
 * often in exchange. https://www.postgresql.org/docs/current/gin.html#GIN-FAST-UPDATE
 */
export const migration0007: Migration = {
  id: '0007-gin-pending-list',
  sql: `ALTER INDEX resource_search_tokens SET (gin_pending_list_limit = 64);`,
};
