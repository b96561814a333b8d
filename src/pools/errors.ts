// Errors of the resource pools. The messages go to clients as they are, so they
// say which pool and which entry.

/** An entry could not be taken: not in the pool, already in use, or malformed. */
export class PoolError extends Error {
  override name = 'PoolError';
}

/** Every entry of the pool is in use (or waiting out its release delay). */
export class PoolExhaustedError extends PoolError {
  override name = 'PoolExhaustedError';
}
