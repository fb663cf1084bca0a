import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestStorage, type TestStorage } from '../../../../test/support/storage.js';
import type { Database, Sql } from '../database/database.js';
import { FhirError } from '../fhir/outcomes.js';
import { ResourceStore } from './resource.store.js';

/** Postgres aborts one side of a deadlock (40P01) or a serialization conflict (40001); the write reruns. */
describe('ResourceStore.write after a transient abort', () => {
  /** A database whose transactions fail with `code` the first `failures` times (the logic around it). */
  function failing(code: string, failures: number): Database & { runs: number } {
    const db = {
      kind: 'pglite' as const,
      runs: 0,
      query: () => Promise.reject(new Error('not used')),
      exec: () => Promise.reject(new Error('not used')),
      close: () => Promise.resolve(),
      transaction: async <T>(fn: (tx: Sql) => Promise<T>): Promise<T> => {
        db.runs++;
        if (db.runs <= failures) throw Object.assign(new Error('aborted'), { code });
        return fn({ query: () => Promise.resolve({ rows: [], rowCount: 0 }), exec: () => Promise.resolve() });
      },
    };
    return db;
  }
  const keys = {} as ConstructorParameters<typeof ResourceStore>[1];

  it('runs the whole write again, and answers 409 when it keeps failing', async () => {
    for (const code of ['40P01', '40001']) {
      const db = failing(code, 2);
      await expect(new ResourceStore(db, keys).write(() => Promise.resolve('done'))).resolves.toBe('done');
      expect(db.runs).toBe(3);
      const stuck = failing(code, 100);
      const err = await new ResourceStore(stuck, keys).write(() => Promise.resolve('done')).catch((e) => e);
      expect(err).toBeInstanceOf(FhirError);
      expect((err as FhirError).kind).toBe('conflict');
      expect(stuck.runs).toBe(5);
    }
    // Anything else is not retried.
    const other = failing('23503', 1);
    await expect(new ResourceStore(other, keys).write(() => Promise.resolve('x'))).rejects.toMatchObject({
      code: '23503',
    });
    expect(other.runs).toBe(1);
  });
});

// A real deadlock needs two connections: PGlite has one and runs transactions one after another.
describe.runIf(!!process.env.TEST_DATABASE_URL)('ResourceStore.write in a real Postgres deadlock', () => {
  let storage: TestStorage;
  beforeAll(async () => {
    storage = await openTestStorage();
  });
  afterAll(async () => {
    await storage?.close();
  });

  it('both writes succeed: the victim is run again', async () => {
    // Each write takes one advisory lock, waits until the other holds its own, then asks for the other's:
    // Postgres must abort one of them. On the rerun the gate is open and the locks come one after another.
    let arrived = 0;
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const runs = { a: 0, b: 0 };
    const write = (name: 'a' | 'b', first: string, second: string) =>
      storage.store.write(async (repo) => {
        runs[name]++;
        await repo.lockConditional(first);
        if (++arrived === 2) open();
        await gate;
        await repo.lockConditional(second);
        return name;
      });
    const results = await Promise.all([write('a', 'k1', 'k2'), write('b', 'k2', 'k1')]);
    expect(results).toEqual(['a', 'b']);
    expect(runs.a + runs.b).toBeGreaterThanOrEqual(3);
  });
});
