import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';

/**
 * The one table from outcome to HTTP status and FHIR issue type (STYLE.md rule 2). Every error a client
 * sees is an OperationOutcome built from here. The FHIR engine throws FhirError; the HTTP edge only reads
 * `status` and `outcome`.
 *
 * Issue types: https://hl7.org/fhir/R4/valueset-issue-type.html
 */
const TABLE = {
  'bad-request': { status: 400, code: 'invalid' },
  unauthorized: { status: 401, code: 'login' },
  forbidden: { status: 403, code: 'forbidden' },
  'not-found': { status: 404, code: 'not-found' },
  'method-not-allowed': { status: 405, code: 'not-supported' },
  'not-acceptable': { status: 406, code: 'not-supported' },
  conflict: { status: 409, code: 'conflict' },
  gone: { status: 410, code: 'deleted' },
  'precondition-failed': { status: 412, code: 'conflict' },
  'too-large': { status: 413, code: 'too-costly' },
  /** A search that would cost too much to answer exactly (HAPI also answers these with 400). */
  'too-costly': { status: 400, code: 'too-costly' },
  'unsupported-media-type': { status: 415, code: 'not-supported' },
  unprocessable: { status: 422, code: 'invariant' },
  'too-many-requests': { status: 429, code: 'throttled' },
  internal: { status: 500, code: 'exception' },
  'not-implemented': { status: 501, code: 'not-supported' },
  unavailable: { status: 503, code: 'transient' },
} as const satisfies Record<string, { status: number; code: OperationOutcomeIssue['code'] }>;

export type OutcomeKind = keyof typeof TABLE;

export function statusOf(kind: OutcomeKind): number {
  return TABLE[kind].status;
}

export class FhirError extends Error {
  readonly status: number;
  readonly outcome: OperationOutcome;

  /**
   * diagnostics must be safe to show a client: no PHI, no stack, no SQL. expression names the failing
   * element or parameter (FHIRPath), as OperationOutcome.issue.expression expects.
   */
  constructor(
    readonly kind: OutcomeKind,
    diagnostics: string,
    options: {
      expression?: string[];
      issues?: OperationOutcomeIssue[];
      headers?: Record<string, string>;
    } = {},
  ) {
    super(diagnostics);
    this.name = 'FhirError';
    this.status = TABLE[kind].status;
    this.headers = options.headers ?? {};
    this.outcome = {
      resourceType: 'OperationOutcome',
      issue: options.issues ?? [
        {
          severity: 'error',
          code: TABLE[kind].code,
          diagnostics,
          ...(options.expression ? { expression: options.expression } : {}),
        },
      ],
    };
  }

  readonly headers: Record<string, string>;
}

export function informational(diagnostics: string): OperationOutcome {
  return {
    resourceType: 'OperationOutcome',
    issue: [{ severity: 'information', code: 'informational', diagnostics }],
  };
}
