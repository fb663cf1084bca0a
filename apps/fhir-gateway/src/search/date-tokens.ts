import { utc } from '../fhir/fhir-date.js';

/**
 * Date blind-index tokens (issue: search over encrypted data). Every date endpoint is indexed at century,
 * decade, year, month and day granularity ("c:", "e:", "y:", "m:", "d:"), plus one marker of its own
 * precision when coarser than a day ("Y:", "M:"). A query range is then covered by a short token list:
 * whole centuries and decades inside it by "c:" and "e:", whole years by "y:", partly covered years by "Y:"
 * and their months, partly covered months by "M:" and their days. Every value whose range can meet the
 * query has a token in the cover; re-checking decrypted candidates removes the rest. The century and
 * decade levels keep open ranges ("ge2023-06") to a few dozen tokens instead of one per year up to
 * MAX_YEAR. Instants use UTC calendar units, as query ranges do.
 */
/**
 * Years with calendar tokens. Endpoints outside share one overflow token each ("o:lo", "o:hi"), so a range
 * reaching past either bound stays a short cover and every four-digit year can still be found.
 */
export const MIN_YEAR = 1800;
export const MAX_YEAR = 2200;
const BELOW = 'o:lo';
const ABOVE = 'o:hi';
export const OPEN_START = 'o:start';
export const OPEN_END = 'o:end';

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** Tokens of one endpoint given as a FHIR date/dateTime/instant string. */
export function endpointTokens(value: string): string[] {
  const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(T.*)?)?)?$/.exec(value);
  if (!m) return [];
  const [, y, mo, d, time] = m;
  if (Number(y) < MIN_YEAR) return [BELOW];
  if (Number(y) >= MAX_YEAR) return [ABOVE];
  if (!mo) return [...coarse(Number(y)), `y:${y}`, `Y:${y}`];
  if (!d) return [...coarse(Number(y)), `y:${y}`, `m:${y}-${mo}`, `M:${y}-${mo}`];
  if (!time) return [...coarse(Number(y)), `y:${y}`, `m:${y}-${mo}`, `d:${y}-${mo}-${d}`];
  const t = new Date(value);
  if (Number.isNaN(t.getTime())) return [];
  const Y = t.getUTCFullYear();
  if (Y < MIN_YEAR) return [BELOW];
  if (Y >= MAX_YEAR) return [ABOVE];
  const M = pad(t.getUTCMonth() + 1);
  return [...coarse(Y), `y:${Y}`, `m:${Y}-${M}`, `d:${Y}-${M}-${pad(t.getUTCDate())}`];
}

function coarse(year: number): string[] {
  return [`c:${Math.floor(year / 100)}`, `e:${Math.floor(year / 10)}`];
}

/** The token cover of [start, end) in ms since epoch; undefined bounds mean open-ended. */
export function coverTokens(start: number | undefined, end: number | undefined): string[] {
  const lo = Math.max(start ?? -Infinity, utc(MIN_YEAR, 0, 1));
  const hi = Math.min(end ?? Infinity, utc(MAX_YEAR, 0, 1));
  const out: string[] = [];
  if (start === undefined) out.push(OPEN_START);
  if (end === undefined) out.push(OPEN_END);
  if ((start ?? -Infinity) < utc(MIN_YEAR)) out.push(BELOW);
  if ((end ?? Infinity) > utc(MAX_YEAR)) out.push(ABOVE);
  if (!(lo < hi)) return out;
  const first = new Date(lo).getUTCFullYear();
  const last = new Date(hi - 1).getUTCFullYear();
  const years: number[] = [];
  // Whole centuries, then whole decades, inside [first, last] and wholly covered by [lo, hi).
  const whole = (y: number) => lo <= utc(y, 0, 1) && utc(y + 1, 0, 1) <= hi;
  for (let y = first; y <= last;) {
    const c = Math.floor(y / 100) * 100;
    const e = Math.floor(y / 10) * 10;
    if (y === c && c + 99 <= last && whole(c) && whole(c + 99)) {
      out.push(`c:${c / 100}`);
      y = c + 100;
    } else if (y === e && e + 9 <= last && whole(e) && whole(e + 9)) {
      out.push(`e:${e / 10}`);
      y = e + 10;
    } else {
      years.push(y);
      y++;
    }
  }
  for (const y of years) {
    const ys = utc(y, 0, 1);
    const ye = utc(y + 1, 0, 1);
    if (lo <= ys && ye <= hi) {
      out.push(`y:${y}`);
      continue;
    }
    out.push(`Y:${y}`);
    for (let mo = 0; mo < 12; mo++) {
      const ms = utc(y, mo, 1);
      const me = utc(y, mo + 1, 1);
      if (me <= lo || ms >= hi) continue;
      if (lo <= ms && me <= hi) {
        out.push(`m:${y}-${pad(mo + 1)}`);
        continue;
      }
      out.push(`M:${y}-${pad(mo + 1)}`);
      for (let d = 1; utc(y, mo, d) < me; d++) {
        const ds = utc(y, mo, d);
        if (ds + 86_400_000 <= lo || ds >= hi) continue;
        out.push(`d:${y}-${pad(mo + 1)}-${pad(d)}`);
      }
    }
  }
  return out;
}
