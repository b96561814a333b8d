// Paths in requests are text the kernel takes as a C string: a NUL byte in one can
// name no file, and Node's fs calls throw a TypeError for it deep in a worker,
// which the daemon would report as its own bug. Refused up front instead.
import { WardenError } from './errors.ts';

export function checkPathText(field: string, value: string | undefined | null): void {
  if (value?.includes('\0')) throw new WardenError(`${field} contains a NUL byte: ${JSON.stringify(value)}`, { code: 'invalid' });
}
