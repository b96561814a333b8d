// Errors a client is meant to read: their message goes into the ErrorResponse
// as it is. Anything else is an internal failure, logged with its stack.

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

export class StateError extends WardenError {
  constructor(allowed: readonly string[], current: string) {
    super(`Container state must be one of ${allowed.map((s) => `'${s}'`).join(', ')}, current state is '${current}'`);
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
