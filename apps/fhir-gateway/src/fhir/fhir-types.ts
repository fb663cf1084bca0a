/** Transport-free request and response of the FHIR engine (STYLE.md rule 1). */
export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface FhirRequest {
  method: HttpMethod;
  /** Path below the FHIR base, without leading slash: "Patient/123/_history/2". */
  path: string;
  query: Record<string, string[]>;
  headers: {
    ifMatch?: string;
    ifNoneMatch?: string;
    ifModifiedSince?: string;
    /** Conditional create (R4 http.html#ccreate): search parameters, e.g. "identifier=http://x|123". */
    ifNoneExist?: string;
    prefer?: string;
    contentType?: string;
  };
  /** Parsed JSON body, if any. */
  body?: unknown;
  /** Internal (Bundle processing): the server id a POST must create its resource under. */
  assignedId?: string;
}

export interface FhirResponse {
  status: number;
  headers: Record<string, string>;
  /** A Buffer is sent as is (the exact stored bytes); an object is serialised as JSON. */
  body?: Buffer | object;
  /** For Bundle processing: the body as an object when the engine already has it, and the exact lastUpdated. */
  resource?: object;
  lastUpdated?: string;
}
