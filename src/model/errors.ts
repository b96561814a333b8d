// Errors and their kinds. Every error a request can end with carries a code
// that survives the trip back from a worker thread (see toWireError and
// fromWireError), so the connection decides from the code, not from the
// class, whether a failure is the client's or ours.
//
// Wrap once per layer: `new WardenError('what this layer was doing', { cause })`
// and never put the cause's text into the message as well; describeError joins
// the chain (`cannot create container: create abc: runc run ... failed: ...`).
// Where the original Warden answered an error, the text here is its text, word
// for word (clients match on them): give such errors no `cause`.

/** What kind of failure: the connection maps codes to how it answers and logs. */
export type ErrorCode =
  /** The request is malformed or asks for something that cannot be. */
  | 'invalid'
  /** A container, job or path the request names is not there. */
  | 'not_found'
  /** The container is in the wrong state for the request. */
  | 'state'
  /** A pool (networks, uids, ports) or a limit (max_containers) is used up. */
  | 'exhausted'
  /** A host tool failed (its command and stderr are in the message). */
  | 'host_command'
  /** Anything else: a failure of ours, logged with its stack. */
  | 'internal';

const CODES: ReadonlySet<string> = new Set<ErrorCode>(['invalid', 'not_found', 'state', 'exhausted', 'host_command', 'internal']);

export interface WardenErrorOptions {
  code?: ErrorCode;
  cause?: unknown;
}

/** An error a client is meant to read: its message goes into the ErrorResponse. */
export class WardenError extends Error {
  override name = 'WardenError';
  readonly code: ErrorCode;
  constructor(message: string, options: WardenErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = options.code ?? (options.cause === undefined ? 'invalid' : codeOf(options.cause));
  }
}

export class UnknownHandleError extends WardenError {
  constructor() {
    super('unknown handle', { code: 'not_found' });
  }
}

export class NoSuchJobError extends WardenError {
  constructor() {
    super('no such job', { code: 'not_found' });
  }
}

/** The original's format: every allowed state inside one pair of quotes ('active, stopped'). */
export class StateError extends WardenError {
  constructor(allowed: readonly string[], current: string) {
    super(`Container state must be one of '${allowed.join(', ')}', current state is '${current}'`, { code: 'state' });
  }
}

export class HandleExistsError extends WardenError {
  constructor(handle: string) {
    super(`container with handle: ${handle} already exists.`, { code: 'invalid' });
  }
}

/** A request the backend has no implementation of (the insecure backend's limits). */
export class NotImplementedError extends WardenError {
  constructor() {
    super('not implemented', { code: 'invalid' });
  }
}

/** The code of any thrown value: its own when it has one of ours, else internal. */
export function codeOf(err: unknown): ErrorCode {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && CODES.has(code) ? (code as ErrorCode) : 'internal';
}

/** Wraps err with what this layer was doing; the code is the cause's unless given. */
export function wrapError(context: string, err: unknown, code?: ErrorCode): WardenError {
  return new WardenError(context, { cause: err, code: code ?? codeOf(err) });
}

/**
 * The message of any thrown value with its causes joined, each text once:
 * a cause whose text the message already ends with is not repeated.
 */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause;
  if (cause === undefined || cause === err) return err.message;
  const rest = describeError(cause);
  return err.message === rest || err.message.endsWith(`: ${rest}`) || err.message.endsWith(rest) ? err.message : `${err.message}: ${rest}`;
}

/** An error as plain data, for structured cloning across a thread boundary. */
export interface WireError {
  readonly wardenWireError: 1;
  name: string;
  code: ErrorCode;
  message: string;
  stack?: string;
  cause?: WireError | string;
  /** Own enumerable data fields (a host command's command, exitCode, stderr). */
  fields?: Record<string, string | number | null>;
}

export function isWireError(v: unknown): v is WireError {
  return typeof v === 'object' && v !== null && (v as WireError).wardenWireError === 1;
}

/** err as plain data (worker side), cause chain included. */
export function toWireError(err: unknown): WireError {
  if (!(err instanceof Error)) return { wardenWireError: 1, name: 'Error', code: 'internal', message: String(err) };
  const fields: Record<string, string | number | null> = {};
  for (const [k, v] of Object.entries(err)) {
    if (k !== 'code' && k !== 'name' && (typeof v === 'string' || typeof v === 'number' || v === null)) fields[k] = v;
  }
  const cause = err.cause === undefined || err.cause === err ? undefined : err.cause instanceof Error ? toWireError(err.cause) : String(err.cause);
  return { wardenWireError: 1, name: err.name, code: codeOf(err), message: err.message, stack: err.stack, cause, fields };
}

/** A WardenError again (main side), with the worker's name, code, fields and stack. */
export function fromWireError(w: WireError): WardenError {
  const cause = w.cause === undefined ? undefined : typeof w.cause === 'string' ? w.cause : fromWireError(w.cause);
  const err = new WardenError(w.message, { code: w.code, cause });
  err.name = w.name;
  if (w.fields) Object.assign(err, w.fields);
  if (w.stack) err.stack = w.stack;
  return err;
}
