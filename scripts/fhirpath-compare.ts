/**
 * The gateway's FHIRPath evaluation (Medplum's engine, corrected by param-expression.ts) against HL7's
 * fhirpath.js on real data (issue #3; manual, not CI): values and index tokens of every indexed search
 * parameter of every resource of the Synthea transaction Bundles of a directory, evaluated
 * with both engines as the index evaluates it (see test/support/fhirpath-equivalence.ts; the generated
 * corpus runs in CI as apps/fhir-gateway/src/search/fhirpath-equivalence.spec.ts).
 *
 *   npx tsx --conditions=source scripts/fhirpath-compare.ts [dir] [--show-values]
 *
 * dir defaults to ../shared/fixtures/synthea next to the repository. Resources are compared as the gateway
 * stores them: a transaction's urn:uuid references are rewritten to Type/id (bundle.service.ts does the
 * same with the ids it assigns). Disagreements print the parameter and expression; the values, which could
 * be PHI, only with --show-values. Exit code 1 when a disagreement is not among the known ones.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  compareResource,
  explain,
  newTally,
  setup,
  type Disagreement,
  type Res,
} from '../test/support/fhirpath-equivalence.js';

interface Entry {
  fullUrl?: string;
  resource?: Res;
}

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const showValues = args.includes('--show-values');
const dir = resolve(args.find((a) => !a.startsWith('--')) ?? join(repo, '../shared/fixtures/synthea'));

function rewrite(v: unknown, ids: Map<string, string>): unknown {
  if (Array.isArray(v)) return v.map((x) => rewrite(x, ids));
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      out[k] = k === 'reference' && typeof x === 'string' && ids.has(x) ? ids.get(x) : rewrite(x, ids);
    }
    return out;
  }
  return v;
}

setup();
const started = Date.now();
const resources: Res[] = [];
const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
for (const f of files) {
  const bundle = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { entry?: Entry[] };
  const ids = new Map<string, string>();
  for (const e of bundle.entry ?? [])
    if (e.fullUrl && e.resource?.id) ids.set(e.fullUrl, `${e.resource.resourceType}/${e.resource.id}`);
  for (const e of bundle.entry ?? []) if (e.resource) resources.push(rewrite(e.resource, ids) as Res);
}

const tally = newTally();
for (const r of resources) compareResource(r, tally);
const seconds = (Date.now() - started) / 1000;

const byKnown = new Map<string, number>();
const unexplained: Disagreement[] = [];
for (const d of tally.disagreements) {
  const known = explain(d);
  if (!known) unexplained.push(d);
  for (const k of known ?? []) byKnown.set(k.id, (byKnown.get(k.id) ?? 0) + 1);
}
const types = new Set(resources.map((r) => r.resourceType));
const show = (v: unknown) => (showValues ? JSON.stringify(v).slice(0, 400) : '(value masked: --show-values)');

console.log(`fhirpath.js vs the gateway's evaluation on ${files.length} bundles in ${dir}`);
console.log(`  resources:      ${tally.resources} (${types.size} types)`);
console.log(`  expressions:    ${tally.expressions.size} (${tally.covered.size} with a non-empty result)`);
console.log(
  `  evaluations:    ${tally.evaluations} (${tally.nonEmpty} non-empty, ${tally.orderOnly} same values in another order)`,
);
console.log(
  `  index tokens:   ${tally.tokens} compared, ${tally.tokenDisagreements.length} evaluations with different tokens`,
);
for (const t of tally.tokenDisagreements.slice(0, 10))
  console.log(`    TOKENS DIFFER ${t.resourceType}.${t.code}`);
console.log(`  disagreements:  ${tally.disagreements.length}, not known: ${unexplained.length}`);
for (const [id, n] of byKnown) console.log(`    ${id}: ${n}`);
const seen = new Set<string>();
for (const d of unexplained) {
  const key = `${d.resourceType}.${d.code}${d.component ?? ''}`;
  if (seen.has(key)) continue;
  seen.add(key);
  console.log(
    `  NOT KNOWN ${d.resourceType}.${d.code}: ${d.expression}${d.component ? ` :: ${d.component}` : ''}`,
  );
  console.log(`    gateway:     ${show(d.gateway)}\n    fhirpath.js: ${show(d.hl7)}`);
}
console.log(`  ${seconds.toFixed(1)} s`);
process.exitCode = unexplained.length > 0 || tally.tokenDisagreements.length > 0 ? 1 : 0;
