/**
 * Blind-index tokens for number and quantity values (R4 search.html#number, #quantity), without order-
 * revealing encryption. A value is indexed by its sign and decimal magnitude bucket at three levels: the
 * order of magnitude ("+e2" for 100 to 999.99...), the first significant digit ("+e2:3" for 300 to 399.99...)
 * and the first two ("+e2:34" for 340 to 349.99...). A query range is covered by the coarsest buckets that
 * lie inside it, refining only at its edges, exactly as date-tokens.ts covers a date range; re-checking
 * the decrypted candidates removes the rest of the edge buckets.
 *
 * What a database reader learns: which values of one parameter share a two-digit bucket (a histogram at two
 * significant digits), never the values or their order across buckets (the tokens are keyed hashes).
 */
export const MIN_EXP = -12;
export const MAX_EXP = 15;
/** Magnitudes below 10^MIN_EXP or at or above 10^(MAX_EXP+1) share one token per sign. */
const LOW = 'lo';
const HIGH = 'hi';
export const ZERO = 'z';

/** Bucket tokens of a finite number. */
export function numberTokens(x: number): string[] {
  if (!Number.isFinite(x)) return [];
  if (x === 0) return [ZERO];
  const sign = x < 0 ? '-' : '+';
  // toExponential gives the decimal digits the value was written with (JSON numbers are parsed to the
  // nearest double, whose shortest form is the one written), so the bucket follows the written value.
  const [mantissa, exponent] = Math.abs(x).toExponential().split('e') as [string, string];
  const e = Number(exponent);
  if (e < MIN_EXP) return [`${sign}${LOW}`];
  if (e > MAX_EXP) return [`${sign}${HIGH}`];
  const digits = mantissa.replace('.', '').padEnd(2, '0');
  return [`${sign}e${e}`, `${sign}e${e}:${digits[0]}`, `${sign}e${e}:${digits.slice(0, 2)}`];
}

/**
 * Tokens covering every value x with a <= x <= b (bounds may be infinite). Inclusive at both ends, and
 * generous at bucket edges, so that floating-point rounding can only add candidates, never lose one.
 */
export function numberCover(a: number, b: number): string[] {
  if (Number.isNaN(a) || Number.isNaN(b) || a > b) return [];
  const out: string[] = [];
  if (a <= 0 && b >= 0) out.push(ZERO);
  if (b > 0) magnitudeCover('+', Math.max(a, 0), b, out);
  if (a < 0) magnitudeCover('-', Math.max(-b, 0), -a, out);
  return out;
}

/** Covers magnitudes m with lo <= m <= hi, m > 0. */
function magnitudeCover(sign: string, lo: number, hi: number, out: string[]): void {
  const slack = (v: number) => Math.abs(v) * 1e-9;
  const meets = (s: number, e: number) => e + slack(e) > lo && s - slack(s) <= hi;
  const inside = (s: number, e: number) => s >= lo && e <= hi;
  if (lo < 10 ** MIN_EXP) out.push(`${sign}${LOW}`);
  if (hi >= 10 ** (MAX_EXP + 1)) out.push(`${sign}${HIGH}`);
  const first = lo <= 10 ** MIN_EXP ? MIN_EXP : Math.max(MIN_EXP, Math.floor(Math.log10(lo)) - 1);
  const last = hi === Infinity ? MAX_EXP : Math.min(MAX_EXP, Math.floor(Math.log10(hi)) + 1);
  for (let e = first; e <= last; e++) {
    const unit = 10 ** e;
    if (!meets(unit, unit * 10)) continue;
    if (inside(unit, unit * 10)) {
      out.push(`${sign}e${e}`);
      continue;
    }
    for (let d = 1; d <= 9; d++) {
      const s1 = d * unit;
      const e1 = (d + 1) * unit;
      if (!meets(s1, e1)) continue;
      if (inside(s1, e1)) {
        out.push(`${sign}e${e}:${d}`);
        continue;
      }
      for (let d2 = 0; d2 <= 9; d2++) {
        const s2 = s1 + (d2 * unit) / 10;
        const e2 = s1 + ((d2 + 1) * unit) / 10;
        if (meets(s2, e2)) out.push(`${sign}e${e}:${d}${d2}`);
      }
    }
  }
}
