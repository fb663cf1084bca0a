import cluster, { type Worker } from 'node:cluster';
import type { Logger } from './http/logger.js';

/**
 * The primary process when WORKERS > 1: it forks the server processes, which share the listening port
 * through node:cluster, and keeps that many running. It opens no database and holds no key.
 *
 * Everything a worker shares with the others already lives in Postgres (signing keys, client assertion
 * jti values, resources and their index); what each keeps in memory is a cache that any worker can rebuild
 * (wrapped DEKs, verified tokens, reference tokens). So one process per core is a deployment choice, not a
 * different server.
 *
 * - The first worker starts alone: it runs the migrations, the re-index and the first signing key, so the
 *   others find them done instead of racing for them.
 * - A worker that dies is replaced, after a pause that doubles while deaths keep coming (250 ms to 10 s).
 *   More than RESTART_LIMIT deaths within RESTART_WINDOW_MS mean something is wrong with the deployment,
 *   not with one process: the primary stops everything and exits 1, so the orchestrator sees it.
 * - SIGTERM or SIGINT: every worker gets SIGTERM and finishes its requests (the worker's own shutdown); a
 *   worker still running after STOP_GRACE_MS is killed. The primary exits 0 if all stopped cleanly.
 */
export const RESTART_LIMIT = 5;
export const RESTART_WINDOW_MS = 60_000;
const STOP_GRACE_MS = 15_000;

export async function superviseWorkers(count: number, logger: Logger): Promise<void> {
  let stopping = false;
  let started = false;
  const deaths: number[] = [];
  const live = new Set<Worker>();

  const stopAll = (code: number) => {
    if (stopping) return;
    stopping = true;
    for (const w of live) w.process.kill('SIGTERM');
    const killer = setTimeout(() => {
      for (const w of live) {
        logger.warn({ pid: w.process.pid }, 'worker did not stop in time; killing it');
        w.process.kill('SIGKILL');
      }
    }, STOP_GRACE_MS);
    killer.unref();
    const done = () => {
      if (live.size > 0) return;
      clearTimeout(killer);
      process.exit(code);
    };
    cluster.on('exit', done);
    done();
  };

  /** Resolves when the worker listens; rejects if it exits first. */
  const fork = (): Promise<Worker> =>
    new Promise((resolve, reject) => {
      const w = cluster.fork();
      live.add(w);
      const onListening = () => {
        w.off('exit', onEarlyExit);
        resolve(w);
      };
      const onEarlyExit = (code: number | null, signal: string | null) => {
        w.off('listening', onListening);
        reject(new Error(`worker ${w.process.pid} exited before listening (code ${code}, signal ${signal})`));
      };
      w.once('listening', onListening);
      w.once('exit', onEarlyExit);
    });

  cluster.on('exit', (w, code, signal) => {
    live.delete(w);
    // Before all have started, a death fails the start (below) instead of being replaced.
    if (stopping || !started) return;
    const now = Date.now();
    deaths.push(now);
    while (deaths.length > 0 && deaths[0]! < now - RESTART_WINDOW_MS) deaths.shift();
    if (deaths.length > RESTART_LIMIT) {
      logger.error(
        { pid: w.process.pid, code, signal, deaths: deaths.length, windowMs: RESTART_WINDOW_MS },
        'workers keep dying; stopping the gateway',
      );
      stopAll(1);
      return;
    }
    const pause = Math.min(10_000, 250 * 2 ** (deaths.length - 1));
    logger.warn({ pid: w.process.pid, code, signal, restartInMs: pause }, 'worker died; replacing it');
    setTimeout(() => {
      if (stopping) return;
      fork().then(
        (n) => logger.info({ pid: n.process.pid }, 'worker replaced'),
        // Its exit is counted by this same handler, which restarts or gives up.
        () => undefined,
      );
    }, pause);
  });

  process.once('SIGTERM', () => stopAll(0));
  process.once('SIGINT', () => stopAll(0));

  try {
    await fork();
    await Promise.all(Array.from({ length: count - 1 }, fork));
  } catch (err) {
    logger.error({ err: (err as Error).message }, 'a worker failed to start; stopping the gateway');
    stopAll(1);
    return;
  }
  started = true;
  logger.info({ workers: count, pids: [...live].map((w) => w.process.pid) }, 'fhir gateway workers ready');
}
