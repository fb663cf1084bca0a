import type { Migration } from '../migrator.js';
import { migration0001 } from './0001-resources.js';
import { migration0002 } from './0002-auth.js';
import { migration0003 } from './0003-search.js';
import { migration0004 } from './0004-search-tokens-column.js';
import { migration0005 } from './0005-id-byte-order.js';
import { migration0006 } from './0006-token-statistics.js';
import { migration0007 } from './0007-gin-pending-list.js';
import { migration0008 } from './0008-link-id-byte-order.js';

/** Applied in this order; never edit a migration that has shipped, add a new one. */
export const migrations: readonly Migration[] = [
  migration0001,
  migration0002,
  migration0003,
  migration0004,
  migration0005,
  migration0006,
  migration0007,
  migration0008,
];
