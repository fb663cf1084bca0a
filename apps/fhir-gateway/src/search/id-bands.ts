/**
 * Id bands: resource ids cut into 16 contiguous ranges of byte order (the "C" collation of resource.id,
 * migration 0005) by their first character. Server-assigned ids are random UUIDs, so each band holds about a
 * sixteenth of a type's resources.
 *
 * Why: the GIN index returns a token's rows in no order, so a page of 20 in id order had to visit every
 * row that carries the token (294 heap rows for `Patient?family=smi` at 100k resources). Short string
 * prefixes, the tokens that match many rows, are also indexed once per band (search-tokens.ts); a page
 * then reads the bands it reaches, in order, and stops (search candidates in resource.repository.ts).
 * A band token reveals nothing beyond the prefix token and the id, both of which the row already shows.
 */
export const ID_BANDS = 16;

/**
 * The first character of each band, ascending in byte order. FHIR ids are [A-Za-z0-9\-.]{1,64}: band 0 also
 * holds "-" and ".", band 10 holds ":" to "a" (the upper-case letters among them), band 15 "f" to "z".
 */
const STARTS = ['', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', 'b', 'c', 'd', 'e', 'f'] as const;

/** The band of an id: the last band whose start is not above it. */
export function idBand(id: string): number {
  let band = 0;
  for (let b = 1; b < ID_BANDS; b++) if (id >= STARTS[b]!) band = b;
  return band;
}

/** The least id of a band, for an `id >=` bound ('' for band 0: no bound). */
export function bandStart(band: number): string {
  return STARTS[band]!;
}
