// Typed access to the config's YAML maps: each value read with its type and
// range checked, and every error naming the key path and the file, so the rest
// of src/config/ reads like a list of keys with their defaults.
import type { U64 } from '../protocol/types.ts';

export class ConfigError extends Error {
  override name = 'ConfigError';
  /** The offending key ("server.container_grace_time"), when one is to blame. */
  readonly key: string | undefined;
  /** The config file, when the config came from one. */
  readonly source: string | undefined;

  constructor(message: string, options: { key?: string; source?: string; cause?: unknown } = {}) {
    super(options.source === undefined ? message : `${options.source}: ${message}`, { cause: options.cause });
    this.key = options.key;
    this.source = options.source;
  }
}

/** Typed access to one map of the config, with errors that name the key path. */
export class Reader {
  readonly #path: string;
  readonly #raw: Record<string, unknown>;
  readonly #source: string | undefined;
  readonly #warnings: string[];

  constructor(path: string, raw: unknown, source: string | undefined, warnings: string[]) {
    this.#path = path;
    this.#source = source;
    this.#warnings = warnings;
    if (raw === null || raw === undefined) {
      raw = {};
    } else if (typeof raw !== 'object' || Array.isArray(raw) || raw instanceof Map) {
      throw new ConfigError(`${path === '' ? 'the config' : path} must be a map of keys to values`, {
        key: path || undefined,
        source,
      });
    }
    this.#raw = raw as Record<string, unknown>;
  }

  key(name: string): string {
    return this.#path === '' ? name : `${this.#path}.${name}`;
  }

  has(name: string): boolean {
    return Object.hasOwn(this.#raw, name);
  }

  warn(message: string): void {
    this.#warnings.push(message);
  }

  error(name: string, requirement: string, value?: unknown): ConfigError {
    const got = value === undefined ? '' : ` (got ${describe(value)})`;
    return new ConfigError(`${this.key(name)} ${requirement}${got}`, { key: this.key(name), source: this.#source });
  }

  /** A nested map; absent or null reads as empty. */
  section(name: string): Reader {
    return new Reader(this.key(name), this.#raw[name], this.#source, this.#warnings);
  }

  /** Records keys not in `known` as warnings; they are otherwise ignored. */
  ignoreUnknown(known: readonly string[]): void {
    for (const k of Object.keys(this.#raw)) {
      if (!known.includes(k)) this.warn(`unknown key ${this.key(k)} ignored`);
    }
  }

  string(name: string, fallback: string): string {
    if (!this.has(name)) return fallback;
    const v = this.#raw[name];
    if (typeof v !== 'string' || v === '') throw this.error(name, 'must be a non-empty string', v);
    return v;
  }

  nullableString(name: string, fallback: string | null): string | null {
    if (!this.has(name)) return fallback;
    const v = this.#raw[name];
    if (v === null) return null;
    if (typeof v !== 'string' || v === '') throw this.error(name, 'must be a non-empty string or null', v);
    return v;
  }

  boolean(name: string, fallback: boolean): boolean {
    if (!this.has(name)) return fallback;
    const v = this.#raw[name];
    if (typeof v !== 'boolean') throw this.error(name, 'must be true or false', v);
    return v;
  }

  number(name: string, fallback: number, range: { min?: number; max?: number } = {}): number {
    if (!this.has(name)) return fallback;
    const v = this.#raw[name];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.error(name, 'must be a number', v);
    return this.#inRange(name, v, range);
  }

  /** An integer; `trustFallback` skips the range check of a computed default (checked by the caller). */
  integer(name: string, fallback: number, range: { min?: number; max?: number } = {}, trustFallback = false): number {
    if (!this.has(name)) return trustFallback ? fallback : this.#inRange(name, fallback, range);
    const v = this.#raw[name];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.error(name, 'must be a number', v);
    if (!Number.isInteger(v)) throw this.error(name, 'must be an integer', v);
    return this.#inRange(name, v, range);
  }

  nullableInteger(name: string, fallback: number | null, range: { min?: number; max?: number } = {}): number | null {
    if (!this.has(name)) return fallback;
    const v = this.#raw[name];
    if (v === null) return null;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.error(name, 'must be a number or null', v);
    if (!Number.isInteger(v)) throw this.error(name, 'must be an integer or null', v);
    return this.#inRange(name, v, range);
  }

  /** An unsigned 64-bit integer, exact (a bigint above 2^53). */
  uint64(name: string): U64 {
    const v = this.#raw[name];
    if (typeof v === 'bigint') {
      if (v >= 0n && v < 2n ** 64n) return v;
      throw this.error(name, 'must be at most 18446744073709551615', v);
    }
    return this.integer(name, 0, { min: 0 });
  }

  nullableNumber(name: string, fallback: number | null, range: { min?: number; max?: number } = {}): number | null {
    if (!this.has(name)) return fallback;
    const v = this.#raw[name];
    if (v === null) return null;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.error(name, 'must be a number or null', v);
    return this.#inRange(name, v, range);
  }

  /**
   * A file mode. YAML 1.1 already reads 0777 as octal (511); a quoted "0777" or a
   * YAML 1.2 style 0o777 arrives as a string and is read as octal too.
   */
  fileMode(name: string, fallback: number): number {
    if (!this.has(name)) return fallback;
    let v = this.#raw[name];
    if (typeof v === 'string' && /^0o?[0-7]{1,4}$/.test(v)) v = Number.parseInt(v.replace(/^0o?/, '') || '0', 8);
    if (typeof v !== 'number' || !Number.isInteger(v)) throw this.error(name, 'must be an octal file mode like 0755', v);
    return this.#inRange(name, v, { min: 0, max: 0o7777 });
  }

  /** A list of strings; absent or null reads as empty and null entries are dropped (the original compacted them). */
  stringList(name: string, check: (s: string) => string | undefined): string[] {
    if (!this.has(name)) return [];
    const v = this.#raw[name];
    if (v === null) return [];
    if (!Array.isArray(v)) throw this.error(name, 'must be a list', v);
    const out: string[] = [];
    v.forEach((item: unknown, i: number) => {
      if (item === null) return;
      if (typeof item !== 'string') throw this.error(`${name}[${i}]`, 'must be a string', item);
      const problem = check(item);
      if (problem !== undefined) throw this.error(`${name}[${i}]`, `must be ${problem}`, item);
      out.push(item);
    });
    return out;
  }

  #inRange(name: string, v: number, range: { min?: number; max?: number }): number {
    if (range.min !== undefined && v < range.min) throw this.error(name, `must be at least ${range.min}`, v);
    if (range.max !== undefined && v > range.max) throw this.error(name, `must be at most ${range.max}`, v);
    return v;
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  return JSON.stringify(value);
}
