// Errors a client is meant to read: their message goes into the ErrorResponse
// as it is. Anything else is an internal failure, logged with its stack.
// Where the original Warden answered an error, the text here is its text, word
// for word (clients match on them); give such errors no `cause`, which
// describeError would append.

export class WardenError extends Error {
  override name = 'WardenError';
}

export class UnknownHandleError extends WardenError {
  constructor() {
    super('unknown handle');
  }
}

export class NoSuchJobError extends WardenError {
  constructor() {
    super('no such job');
  }
}

/** The original's format: every allowed state inside one pair of quotes ('active, stopped'). */
export class StateError extends WardenError {
  constructor(allowed: readonly string[], current: string) {
    super(`Container state must be one of '${allowed.join(', ')}', current state is '${current}'`);
  }
}

export class HandleExistsError extends WardenError {
  constructor(handle: string) {
    super(`container with handle: ${handle} already exists.`);
  }
}

/** A request the backend has no implementation of (the insecure backend's limits). */
export class NotImplementedError extends WardenError {
  constructor() {
    super('not implemented');
  }
}

/** The message of any thrown value, with causes joined (`creating container: mounting overlay: ...`). */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause;
    return cause !== undefined && cause !== err ? `${err.message}: ${describeError(cause)}` : err.message;
  }
  return String(err);
}
