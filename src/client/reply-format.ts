// Replies as the original Warden REPL printed them: one `field : value` line per
// set field, in declaration order, nested fields flattened with dots
// (`memory_stat.rss : 123`), repeated ones indexed (`handles[0] : abc`), enums
// by name, bytes as text.
import protobuf from 'protobufjs';
import { messageType } from '../protocol/codec.ts';

/** `messageName` is the protobuf message, e.g. `InfoResponse`. */
export function formatReply(messageName: string, body: object): string {
  const lines: string[] = [];
  flatten(messageType(messageName), body as Record<string, unknown>, '', lines);
  return lines.map((line) => `${line}\n`).join('');
}

function flatten(type: protobuf.Type, obj: Record<string, unknown>, prefix: string, out: string[]): void {
  for (const field of type.fieldsArray) {
    // Own properties only: a decoded protobufjs message keeps defaults on its prototype.
    if (!Object.hasOwn(obj, field.name)) continue;
    const value = obj[field.name];
    if (value === undefined || value === null) continue;
    field.resolve();
    const key = `${prefix}${field.name}`;
    if (field.repeated && Array.isArray(value)) {
      value.forEach((el, i) => emit(field, el, `${key}[${i}]`, out));
    } else {
      emit(field, value, key, out);
    }
  }
}

function emit(field: protobuf.Field, value: unknown, key: string, out: string[]): void {
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Type) {
    flatten(rt, value as Record<string, unknown>, `${key}.`, out);
  } else if (rt instanceof protobuf.Enum) {
    out.push(`${key} : ${rt.valuesById[value as number] ?? String(value)}`);
  } else if (value instanceof Uint8Array) {
    out.push(`${key} : ${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8')}`);
  } else {
    out.push(`${key} : ${String(value)}`);
  }
}
