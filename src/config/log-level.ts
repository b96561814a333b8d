// Log levels: the original Warden (steno) names in the config, pino's at run time.
// steno's debug1 and debug2 are finer than debug; pino's only finer level is trace.

export type PinoLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

const LEVELS: Readonly<Record<string, PinoLevel>> = {
  off: 'silent',
  silent: 'silent',
  fatal: 'fatal',
  error: 'error',
  warn: 'warn',
  warning: 'warn',
  info: 'info',
  debug: 'debug',
  debug1: 'trace',
  debug2: 'trace',
  trace: 'trace',
  all: 'trace',
};

/** Every level name the config accepts (case-insensitive). */
export const LOG_LEVEL_NAMES: readonly string[] = Object.keys(LEVELS);

export function isLogLevel(level: string): boolean {
  return Object.hasOwn(LEVELS, level.toLowerCase());
}

/** Maps a config level (debug2, info, ...) to pino's; throws RangeError on an unknown name. */
export function pinoLevel(level: string): PinoLevel {
  const mapped = Object.hasOwn(LEVELS, level.toLowerCase()) ? LEVELS[level.toLowerCase()] : undefined;
  if (mapped === undefined) {
    throw new RangeError(`unknown log level ${JSON.stringify(level)} (one of ${LOG_LEVEL_NAMES.join(', ')})`);
  }
  return mapped;
}
