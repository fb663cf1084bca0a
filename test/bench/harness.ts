import autocannon from 'autocannon';

/**
 * The reusable part of `npm run bench`: drive one HTTP scenario with autocannon on 127.0.0.1 for a bounded
 * time, and compare it with its baseline measured in the same run. Later issues add scenarios; each one
 * supplies a full-path target and a baseline target.
 */
export interface Target {
  url: string;
  method?: 'GET' | 'POST' | 'PUT';
  headers?: Record<string, string>;
  /** Builds each request; called per request so ids or bodies can vary. */
  next?: () => { path: string; body?: string };
}

export interface Measurement {
  label: string;
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  errors: number;
  non2xx: number;
}

export interface Comparison {
  scenario: string;
  database: string;
  full: Measurement;
  baseline: Measurement;
  /** full-path throughput / baseline throughput. */
  ratio: number;
}

export interface RunOptions {
  durationSeconds: number;
  connections: number;
}

/** Upper bound on requests per measurement, whatever the duration. */
const MAX_REQUESTS = 100_000;

export async function measure(label: string, target: Target, opts: RunOptions): Promise<Measurement> {
  const url = new URL(target.url);
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: url.origin,
        connections: opts.connections,
        duration: opts.durationSeconds,
        requests: [
          {
            method: target.method ?? 'GET',
            path: url.pathname,
            headers: target.headers,
            setupRequest: (req) => {
              const n = target.next?.();
              return n ? { ...req, path: n.path, body: n.body } : req;
            },
          },
        ],
      },
      (err: unknown, res) =>
        err
          ? reject(err instanceof Error ? err : new Error('autocannon failed', { cause: err }))
          : resolve(res),
    );
    // Bounded in time (duration) and in count: stop early past MAX_REQUESTS.
    let sent = 0;
    instance.on('response', () => {
      if (++sent === MAX_REQUESTS) instance.stop();
    });
  });
  return {
    label,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests: result.requests.total,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  };
}

/** Alternates full path and baseline `rounds` times and keeps the median of each, as the machine is noisy. */
export async function compare(
  scenario: string,
  database: string,
  full: Target,
  baseline: Target,
  opts: RunOptions & { rounds: number },
): Promise<Comparison> {
  const fulls: Measurement[] = [];
  const bases: Measurement[] = [];
  for (let i = 0; i < opts.rounds; i++) {
    bases.push(await measure('baseline', baseline, opts));
    fulls.push(await measure('full path', full, opts));
  }
  const f = median(fulls);
  const b = median(bases);
  return { scenario, database, full: f, baseline: b, ratio: b.rps > 0 ? f.rps / b.rps : 0 };
}

function median(ms: Measurement[]): Measurement {
  const sorted = [...ms].sort((a, b) => a.rps - b.rps);
  const mid = sorted[Math.floor(sorted.length / 2)]!;
  const med = (pick: (m: Measurement) => number) => {
    const xs = ms.map(pick).sort((a, b) => a - b);
    return xs[Math.floor(xs.length / 2)]!;
  };
  return { ...mid, p50: med((m) => m.p50), p99: med((m) => m.p99), rps: med((m) => m.rps) };
}

export function formatTable(rows: Comparison[]): string {
  const head =
    '| scenario | db | full req/s | full p50 ms | full p99 ms | baseline req/s | baseline p50 ms | baseline p99 ms | ratio | errors |';
  const sep = '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|';
  const lines = rows.map(
    (r) =>
      `| ${r.scenario} | ${r.database} | ${r.full.rps.toFixed(0)} | ${r.full.p50} | ${r.full.p99} | ${r.baseline.rps.toFixed(0)} | ${r.baseline.p50} | ${r.baseline.p99} | ${r.ratio.toFixed(2)} | ${r.full.errors + r.full.non2xx}/${r.baseline.errors + r.baseline.non2xx} |`,
  );
  return [head, sep, ...lines].join('\n');
}
