import { FhirError } from './outcomes.js';

/**
 * FHIR dateTime at any precision (https://hl7.org/fhir/R4/datatypes.html#dateTime) as the half-open
 * interval [start, end) of instants it covers. A value without a time zone is read as UTC: a server may
 * choose its local zone (R4 search.html#date), and UTC keeps results independent of where it runs.
 */
const DATE_TIME =
  /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

export function parseDateRange(value: string, param: string): { start: string; end: string } {
  const m = DATE_TIME.exec(value);
  if (!m) throw badDate(param);
  const [, y, mo, d, h, mi, s, frac, tz] = m;
  // ISO 8601 offsets run from -12:00 to +14:00, with minutes below 60.
  if (tz && tz !== 'Z' && (Number(tz.slice(1, 3)) > 14 || Number(tz.slice(4, 6)) > 59)) throw badDate(param);
  const offsetMin =
    tz && tz !== 'Z' ? (tz[0] === '-' ? -1 : 1) * (Number(tz.slice(1, 3)) * 60 + Number(tz.slice(4, 6))) : 0;
  const year = Number(y);
  const month = mo ? Number(mo) - 1 : 0;
  const day = d ? Number(d) : 1;
  if (
    month > 11 ||
    day < 1 ||
    day > 31 ||
    Number(h ?? 0) > 23 ||
    Number(mi ?? 0) > 59 ||
    Number(s ?? 0) > 60
  ) {
    throw badDate(param);
  }
  const ms = frac ? Math.floor(Number(`0.${frac}`) * 1000) : 0;
  const startUtc =
    utc(year, month, day, Number(h ?? 0), Number(mi ?? 0), Number(s ?? 0), ms) - offsetMin * 60_000;
  let endUtc: number;
  if (!mo) endUtc = utc(year + 1, 0, 1);
  else if (!d) endUtc = utc(year, month + 1, 1);
  else if (!h) endUtc = utc(year, month, day + 1);
  else if (!s) endUtc = startUtc + 60_000;
  else if (!frac) endUtc = startUtc + 1000;
  else endUtc = startUtc + 1;
  if (Number.isNaN(startUtc) || new Date(utc(year, month, day)).getUTCDate() !== day) throw badDate(param);
  return { start: new Date(startUtc).toISOString(), end: new Date(endUtc).toISOString() };
}

/**
 * Date.UTC for every year: Date.UTC maps years 0 to 99 to 1900 to 1999, which would turn "0050" into 1950.
 */
export function utc(year: number, month = 0, day = 1, h = 0, mi = 0, s = 0, ms = 0): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month, day);
  d.setUTCHours(h, mi, s, ms);
  return d.getTime();
}

/**
 * An ISO instant as SQL may take it: instants past year 9999 (the end of "9999", say) have no ISO form
 * Postgres parses, and every stored instant is before them, so they are "infinity".
 */
export function sqlInstant(iso: string): string {
  if (iso === 'infinity' || iso === '-infinity') return iso;
  const t = Date.parse(iso);
  if (!(t < utc(10000))) return 'infinity';
  if (!(t >= utc(1))) return '-infinity';
  return iso;
}

/** An instant (R4 `_since`): full precision with a time zone. */
export function parseInstant(value: string, param: string): string {
  if (!/T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(value)) throw badDate(param);
  return parseDateRange(value, param).start;
}

function badDate(param: string): FhirError {
  return new FhirError('bad-request', `${param} is not a valid FHIR date/time`, { expression: [param] });
}
