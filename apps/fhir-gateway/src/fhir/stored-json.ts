import type { Bundle } from '@medplum/fhirtypes';
import type { AnyResource } from './resource-json.js';

/**
 * Resources parsed from their stored bytes keep a link to those bytes, so that a search response sends the
 * bytes as they are instead of serialising the parsed copy again (JSON.stringify was 6.5% of the gateway's
 * CPU on a page of 20 Patients). The stored bytes are the exact JSON a read returns (ARCHITECTURE.md,
 * "Storage and encryption"). The parsed object is frozen at the top: code that changes a resource must
 * copy it (as _summary and _elements do), and a top-level change would throw instead of being ignored.
 */
const stored = new WeakMap<object, Buffer>();

export function parseStored(json: Buffer): AnyResource {
  const r = Object.freeze(JSON.parse(json.toString('utf8')) as AnyResource);
  stored.set(r, json);
  return r;
}

/** The JSON of a response body: a Bundle's entries that hold a stored resource are written around its bytes. */
export function serializeBody(body: object): string | Buffer {
  const bundle = body as Bundle;
  if (
    bundle.resourceType !== 'Bundle' ||
    !Array.isArray(bundle.entry) ||
    !bundle.entry.some((e) => e.resource !== undefined && stored.has(e.resource))
  ) {
    return JSON.stringify(body);
  }
  const { entry, ...rest } = bundle;
  // "entry" last, so the head ends in `"entry":[]}`; the entries go between its brackets.
  const head = JSON.stringify({ ...rest, entry: [] });
  const parts: Buffer[] = [];
  let text = head.slice(0, -2);
  entry.forEach((e, i) => {
    text += i ? ',{' : '{';
    let first = true;
    for (const [k, v] of Object.entries(e)) {
      if (v === undefined) continue;
      text += `${first ? '' : ','}${JSON.stringify(k)}:`;
      first = false;
      const bytes = k === 'resource' ? stored.get(v as object) : undefined;
      if (bytes) {
        parts.push(Buffer.from(text), bytes);
        text = '';
      } else text += JSON.stringify(v);
    }
    text += '}';
  });
  parts.push(Buffer.from(`${text}]}`));
  return Buffer.concat(parts);
}
