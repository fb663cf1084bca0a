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
    Date.UTC(year, month, day, Number(h ?? 0), Number(mi ?? 0), Number(s ?? 0), ms) - offsetMin * 60_000;
  let endUtc: number;
  if (!mo) endUtc = Date.UTC(year + 1, 0, 1);
  else if (!d) endUtc = Date.UTC(year, month + 1, 1);
  else if (!h) endUtc = Date.UTC(year, month, day + 1);
  else if (!s) endUtc = startUtc + 60_000;
  else if (!frac) endUtc = startUtc + 1000;
  else endUtc = startUtc + 1;
  if (Number.isNaN(startUtc) || new Date(Date.UTC(year, month, day)).getUTCDate() !== day)
    throw badDate(param);
  return { start: new Date(startUtc).toISOString(), end: new Date(endUtc).toISOString() };
}

/** An instant (R4 `_since`): full precision with a time zone. */
export function parseInstant(value: string, param: string): string {
  if (!/T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(value)) throw badDate(param);
  return parseDateRange(value, param).start;
}

function badDate(param: string): FhirError {
  return new FhirError('bad-request', `${param} is not a valid FHIR date/time`, { expression: [param] });
}
