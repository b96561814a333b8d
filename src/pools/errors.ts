// Errors of the resource pools. The messages go to clients as they are, so they
// say which pool and which entry.
import { WardenError, type ErrorCode } from '../model/errors.ts';

/** An entry could not be taken: not in the pool, already in use, or malformed. */
export class PoolError extends WardenError {
  override name = 'PoolError';
  constructor(message: string, code: ErrorCode = 'invalid') {
    super(message, { code });
  }
}

/** Every entry of the pool is in use (or waiting out its release delay). */
export class PoolExhaustedError extends PoolError {
  override name = 'PoolExhaustedError';
  constructor(message: string) {
    super(message, 'exhausted');
  }
}
