import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { FhirError, type OutcomeKind } from '../fhir/outcomes.js';
import type { Logger } from './logger.js';

const FASTIFY_CODES: Record<string, { kind: OutcomeKind; message: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: {
    kind: 'too-large',
    message: 'the request body is larger than the server accepts',
  },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    kind: 'unsupported-media-type',
    message: 'unsupported Content-Type; send application/fhir+json',
  },
  FST_ERR_CTP_EMPTY_JSON_BODY: { kind: 'bad-request', message: 'the request body is empty' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    kind: 'bad-request',
    message: 'Content-Length does not match the body',
  },
};

const HTTP_KINDS: Record<number, OutcomeKind> = {
  400: 'bad-request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not-found',
  405: 'method-not-allowed',
  413: 'too-large',
  415: 'unsupported-media-type',
  503: 'unavailable',
};

/**
 * One global filter: every error leaves as an OperationOutcome with the right status and the request id.
 * Unknown errors become a 500 whose body says nothing of internals; the log keeps the error class and
 * stack (never the message of a foreign error, which could quote data) under the same request id.
 */
@Catch()
export class FhirExceptionFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const reply = http.getResponse<FastifyReply>();
    const request = http.getRequest<FastifyRequest>();
    const error = this.toFhirError(exception, request.id);
    if (error.status >= 500) {
      this.logger.error(
        {
          reqId: request.id,
          errorClass: (exception as Error | undefined)?.name,
          stack: (exception as Error | undefined)?.stack?.split('\n').slice(1, 8).join('\n'),
        },
        'request failed',
      );
    }
    void reply
      .status(error.status)
      .headers({
        ...error.headers,
        'content-type': 'application/fhir+json; charset=utf-8',
        'x-request-id': request.id,
      })
      .send(JSON.stringify(error.outcome));
  }

  private toFhirError(exception: unknown, requestId: string): FhirError {
    if (exception instanceof FhirError) return exception;
    const code = (exception as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && FASTIFY_CODES[code]) {
      return new FhirError(FASTIFY_CODES[code].kind, FASTIFY_CODES[code].message);
    }
    if (exception instanceof SyntaxError && (exception as { statusCode?: number }).statusCode === 400) {
      return new FhirError('bad-request', 'the request body is not valid JSON');
    }
    if (exception instanceof HttpException) {
      const kind = HTTP_KINDS[exception.getStatus()];
      if (kind) return new FhirError(kind, kind === 'not-found' ? 'no such endpoint' : exception.message);
    }
    const status = (exception as { statusCode?: unknown } | null)?.statusCode;
    if (typeof status === 'number' && HTTP_KINDS[status]) {
      return new FhirError(HTTP_KINDS[status], 'the request could not be processed');
    }
    return new FhirError('internal', `internal error; quote request id ${requestId}`);
  }
}
