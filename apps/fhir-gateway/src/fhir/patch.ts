import { fhirpathPatchTypedValue, parseFhirPathPatchParameters } from '@medplum/core';
import type { Parameters } from '@medplum/fhirtypes';
import jsonPatch, { type Operation } from 'fast-json-patch';
import { FhirError } from './outcomes.js';
import type { AnyResource } from './resource-json.js';

/**
 * The two PATCH formats of R4 (http.html#patch): JSON Patch (RFC 6902, application/json-patch+json) and
 * FHIRPath Patch (a Parameters resource, application/fhir+json; https://hl7.org/fhir/R4/fhirpatch.html).
 */
export type PatchDocument =
  { kind: 'json-patch'; ops: Operation[] } | { kind: 'fhirpath-patch'; params: Parameters };

export function parsePatch(body: unknown, contentType: string | undefined): PatchDocument {
  const mime = contentType?.split(';')[0]?.trim();
  if (mime === 'application/json-patch+json') {
    if (!Array.isArray(body))
      throw new FhirError('bad-request', 'a JSON Patch document is an array of operations');
    return { kind: 'json-patch', ops: body as Operation[] };
  }
  if (mime === 'application/fhir+json' || mime === 'application/json') {
    if ((body as { resourceType?: unknown } | undefined)?.resourceType !== 'Parameters') {
      throw new FhirError('bad-request', 'a FHIRPath Patch is a Parameters resource');
    }
    return { kind: 'fhirpath-patch', params: body as Parameters };
  }
  throw new FhirError(
    'unsupported-media-type',
    'PATCH takes application/json-patch+json (JSON Patch) or application/fhir+json (FHIRPath Patch)',
  );
}

/** Applies the patch to a copy of doc. A patch that cannot apply fails as a whole (RFC 6902 §5). */
export function applyPatchDocument(doc: AnyResource, patch: PatchDocument): AnyResource {
  if (patch.kind === 'json-patch') {
    try {
      const err = jsonPatch.validate(patch.ops, doc);
      if (err) throw err;
      return jsonPatch.applyPatch(structuredClone(doc), patch.ops, false, false).newDocument;
    } catch (e) {
      const failedTest = (e as { name?: string }).name === 'TEST_OPERATION_FAILED';
      throw new FhirError(
        failedTest ? 'unprocessable' : 'bad-request',
        failedTest ? 'a JSON Patch test operation failed' : 'the JSON Patch is not valid for this resource',
      );
    }
  }
  const value = structuredClone(doc);
  try {
    fhirpathPatchTypedValue({ type: doc.resourceType, value }, parseFhirPathPatchParameters(patch.params));
  } catch {
    // The library's message may quote values from the resource: keep it out of the outcome.
    throw new FhirError('bad-request', 'the FHIRPath Patch could not be applied to this resource');
  }
  return value;
}
