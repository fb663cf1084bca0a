import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileCheckpointer } from './checkpointer.js';

describe('FileCheckpointer', () => {
  it('persists the last processed event across reopen', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cp-'));
    try {
      const path = join(dir, 'sub', 'consent-sync.checkpoint');
      const a = await FileCheckpointer.open(path);
      expect(a.current()).toBeUndefined();
      await a.checkpointEvent({
        blockNumber: 12n,
        transactionId: 'tx-a',
        name: 'ConsentGranted',
        payload: '{}',
      });
      const b = await FileCheckpointer.open(path);
      expect(b.current()).toEqual({ blockNumber: 12n, transactionId: 'tx-a' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
