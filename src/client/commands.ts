// The command-line client's commands, in the original Warden REPL's syntax:
// request names in snake_case, fields as `--field value`, nested fields with
// dots (`--rlimits.nofile 1024`), repeated ones indexed
// (`--bind_mounts[0].src_path /x`), enums by name, bools as a bare flag or
// followed by true/false. Field names and types come from the protobuf
// reflection of the request message, so the CLI follows warden.proto.
import protobuf from 'protobufjs';
import { messageType } from '../protocol/codec.ts';
import { REQUEST_NAMES, type RequestName } from '../protocol/types.ts';
import { u64 } from '../protocol/u64.ts';

export class CommandError extends Error {
  override name = 'CommandError';
}

export interface CommandSpec {
  /** snake_case, as typed: `net_in`. */
  readonly name: string;
  readonly type: RequestName;
  readonly description: string;
}

const DESCRIPTIONS: Record<RequestName, string> = {
  Create: 'Create a container; every field is optional.',
  Stop: 'Stop every process in a container.',
  Destroy: 'Stop a container and release everything it holds.',
  Info: "Show a container's state, addresses and resource usage.",
  Spawn: 'Start a script in a container and print its job id.',
  Link: "Wait for a job to end and print its exit status and output.",
  Run: "Spawn a script and stream its output; the job's exit status is the command's.",
  Stream: "Stream an existing job's output; its exit status is the command's.",
  NetIn: 'Forward a host port to a port of the container.',
  NetOut: 'Allow outbound traffic from a container.',
  CopyIn: 'Copy files from the host into a container.',
  CopyOut: 'Copy files from a container to the host.',
  LimitMemory: "Set or show a container's memory limit.",
  LimitDisk: "Set or show a container's disk limits.",
  LimitBandwidth: "Set a container's bandwidth rate and burst.",
  LimitCpu: "Set or show a container's CPU shares.",
  Ping: 'Check that warden answers.',
  List: 'List the handles of all containers.',
  Echo: 'Have warden echo a message back.',
};

export function snakeCase(type: string): string {
  return type.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

export const COMMANDS: readonly CommandSpec[] = REQUEST_NAMES.map((type) => ({
  name: snakeCase(type),
  type,
  description: DESCRIPTIONS[type],
}));

export function findCommand(name: string): CommandSpec | undefined {
  const lower = name.toLowerCase();
  return COMMANDS.find((c) => c.name === lower);
}

export type Body = Record<string, unknown>;

export type ParsedCommand =
  | { kind: 'help'; command: CommandSpec | undefined }
  | { kind: 'request'; command: CommandSpec; body: Body };

/** Turn a command's words (`run --handle h --script 'echo hi'`) into a request body. */
export function parseCommand(words: readonly string[]): ParsedCommand {
  const [first, ...args] = words;
  if (first === undefined) throw new CommandError('no command given');
  if (first === 'help' || first === '--help') {
    if (args[0] === undefined) return { kind: 'help', command: undefined };
    return { kind: 'help', command: commandNamed(args[0]) };
  }
  const command = commandNamed(first);
  const body = parseFields(command, args);
  return body === undefined ? { kind: 'help', command } : { kind: 'request', command, body };
}

function commandNamed(name: string): CommandSpec {
  const command = findCommand(name);
  if (!command) throw new CommandError(`unknown command '${name}'; 'help' lists the commands`);
  return command;
}

let featuresResolved = false;

function requestType(command: CommandSpec): protobuf.Type {
  const type = messageType(`${command.type}Request`);
  // protobufjs works out proto2 `required` (a field feature) only when the
  // whole root is resolved; until then every field claims to be optional.
  if (!featuresResolved) {
    type.root.resolveAll();
    featuresResolved = true;
  }
  return type;
}

/** The request body, or undefined when the arguments ask for the command's help. */
function parseFields(command: CommandSpec, args: readonly string[]): Body | undefined {
  const fail = (msg: string): never => {
    throw new CommandError(`${command.name}: ${msg}`);
  };
  const body: Body = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--help') return undefined;
    if (!arg.startsWith('--') || arg.length === 2) fail(`expected a --field, got '${arg}'`);
    const eq = arg.indexOf('=');
    const flag = eq < 0 ? arg : arg.slice(0, eq);
    const inline = eq < 0 ? undefined : arg.slice(eq + 1);
    const slot = locate(requestType(command), body, flag, fail);

    let raw: string;
    if (inline !== undefined) {
      raw = inline;
    } else if (slot.field.type === 'bool') {
      const next = args[i + 1];
      raw = next === 'true' || next === 'false' ? args[++i] : 'true';
    } else {
      if (i + 1 >= args.length) fail(`${flag} needs a value`);
      raw = args[++i];
    }
    slot.target[slot.key] = convert(slot.field, raw, flag, fail);
  }
  checkRequired(requestType(command), body, '', fail);
  return body;
}

interface Slot {
  field: protobuf.Field;
  target: Record<string | number, unknown>;
  key: string | number;
}

const ELEMENT = /^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?$/;

/** Find (creating the messages and lists on the way) where `--a[0].b` goes in body. */
function locate(root: protobuf.Type, body: Body, flag: string, fail: (msg: string) => never): Slot {
  const elements = flag.slice(2).split('.');
  let type = root;
  let target: Record<string | number, unknown> = body;
  for (let e = 0; e < elements.length; e++) {
    const m = ELEMENT.exec(elements[e]);
    if (!m) fail(`'${elements[e]}' in ${flag} is not a field name`);
    const [, name, indexText] = m as RegExpExecArray;
    const field = type.fields[name];
    if (!field) {
      const where = e === 0 ? '' : ` of ${elements.slice(0, e).join('.')}`;
      fail(`unknown field '${name}'${where} in ${flag}`);
    }
    field.resolve();
    const last = e === elements.length - 1;

    let holder: Record<string | number, unknown> = target;
    let key: string | number = name;
    if (field.repeated) {
      if (indexText === undefined) fail(`field '${name}' is repeated; give an index, as in --${name}[0]`);
      const list = (target[name] ??= []) as unknown[];
      const index = Number(indexText);
      if (index > list.length) fail(`index ${index} of '${name}' in ${flag} skips index ${list.length}`);
      holder = list as unknown as Record<number, unknown>;
      key = index;
    } else if (indexText !== undefined) {
      fail(`field '${name}' in ${flag} is not repeated; drop the [${indexText}]`);
    }

    const nested = field.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
    if (!nested) {
      if (!last) fail(`field '${name}' in ${flag} is a ${field.type} and has no fields`);
      return { field, target: holder, key };
    }
    if (last) {
      const example = nested.fieldsArray[0]?.name ?? 'field';
      fail(`field '${name}' is a message; set its fields, as in ${flag}.${example}`);
    }
    type = nested;
    target = (holder[key] ??= {}) as Record<string | number, unknown>;
  }
  throw new Error('unreachable: a flag has at least one element');
}

// Checked as bigints: 64-bit fields take their whole range, exactly (a value
// above 2^53 goes out as a bigint, see protocol/types.ts U64).
const INTEGER_RANGES: Record<string, [bigint, bigint]> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
};

function convert(field: protobuf.Field, raw: string, flag: string, fail: (msg: string) => never): unknown {
  const enumType = field.resolvedType instanceof protobuf.Enum ? field.resolvedType : undefined;
  if (enumType) {
    const names = Object.keys(enumType.values);
    const byName = names.find((n) => n.toLowerCase() === raw.toLowerCase());
    if (byName !== undefined) return enumType.values[byName];
    if (/^\d+$/.test(raw) && enumType.valuesById[Number(raw)] !== undefined) return Number(raw);
    return fail(`${flag} is one of ${names.join(', ')}; got '${raw}'`);
  }
  const range = INTEGER_RANGES[field.type];
  if (range) {
    const n = /^-?\d+$/.test(raw) ? BigInt(raw) : undefined;
    if (n === undefined || n < range[0] || n > range[1]) {
      return fail(`${flag} is a ${field.type} (${range[0]} to ${range[1]}); got '${raw}'`);
    }
    return u64(n);
  }
  switch (field.type) {
    case 'string':
      return raw;
    case 'bytes':
      return Buffer.from(raw, 'utf8');
    case 'bool':
      if (raw !== 'true' && raw !== 'false') return fail(`${flag} is true or false; got '${raw}'`);
      return raw === 'true';
    case 'double':
    case 'float': {
      const n = Number(raw);
      if (raw.trim() === '' || Number.isNaN(n)) return fail(`${flag} is a number; got '${raw}'`);
      return n;
    }
    default:
      return fail(`${flag} has type ${field.type}, which the command line cannot set`);
  }
}

function checkRequired(type: protobuf.Type, obj: Body, prefix: string, fail: (msg: string) => never): void {
  for (const field of type.fieldsArray) {
    const value = obj[field.name];
    if (value === undefined) {
      if (field.required) fail(`missing required field --${prefix}${field.name}`);
      continue;
    }
    field.resolve();
    if (!(field.resolvedType instanceof protobuf.Type)) continue;
    const nested = field.resolvedType;
    if (field.repeated) {
      (value as Body[]).forEach((el, i) => checkRequired(nested, el, `${prefix}${field.name}[${i}].`, fail));
    } else {
      checkRequired(nested, value as Body, `${prefix}${field.name}.`, fail);
    }
  }
}

// ---- help -----------------------------------------------------------------

interface FieldHelp {
  flag: string;
  note: string;
}

function valueHint(field: protobuf.Field): string {
  field.resolve();
  if (field.type === 'bool') return '[true|false]';
  if (field.resolvedType instanceof protobuf.Enum) return Object.keys(field.resolvedType.values).join('|');
  return `<${field.type}>`;
}

function fieldNote(field: protobuf.Field): string {
  const rule = field.required ? 'required' : field.repeated ? 'repeated' : 'optional';
  const def = field.options?.default as unknown;
  return def === undefined ? rule : `${rule}, default ${String(def)}`;
}

/** A message whose fields are all optional scalars of one type, listed as one line. */
function uniformScalars(type: protobuf.Type): string | undefined {
  const fields = type.fieldsArray;
  if (fields.length < 4) return undefined;
  const first = fields[0];
  for (const f of fields) {
    f.resolve();
    if (f.required || f.repeated || f.resolvedType || f.type !== first.type) return undefined;
  }
  return first.type;
}

function describeFields(type: protobuf.Type, prefix: string): FieldHelp[] {
  const out: FieldHelp[] = [];
  for (const field of type.fieldsArray) {
    field.resolve();
    const flag = `${prefix}${field.name}${field.repeated ? '[i]' : ''}`;
    const nested = field.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
    if (!nested) {
      out.push({ flag: `--${flag} ${valueHint(field)}`, note: fieldNote(field) });
      continue;
    }
    const scalar = uniformScalars(nested);
    if (scalar !== undefined) {
      const names = nested.fieldsArray.map((f) => f.name).join(', ');
      out.push({ flag: `--${flag}.<name> <${scalar}>`, note: `optional; name: ${names}` });
      continue;
    }
    out.push(...describeFields(nested, `${flag}.`));
  }
  return out;
}

/** Flags a command's first-level fields take, for tab completion (`--bind_mounts[0].`). */
export function fieldFlags(command: CommandSpec): string[] {
  return requestType(command).fieldsArray.map((field) => {
    field.resolve();
    const index = field.repeated ? '[0]' : '';
    const dot = field.resolvedType instanceof protobuf.Type ? '.' : '';
    return `--${field.name}${index}${dot}`;
  });
}

function commandHelp(command: CommandSpec, width: number): string {
  const fields = describeFields(requestType(command), '');
  let text = `${command.name.padEnd(width)}  ${command.description}\n`;
  if (fields.length === 0) return text;
  const flagWidth = Math.max(...fields.map((f) => f.flag.length));
  for (const f of fields) text += `    ${f.flag.padEnd(flagWidth)}  ${f.note}\n`;
  return text;
}

const SYNTAX_NOTE = `Fields are given as --field value. Nested fields take dots (--rlimits.nofile 1024),
repeated ones an index from 0 ([i] above: --bind_mounts[0].src_path /x), enums a name
(--protocol UDP), bools nothing or true/false (--kill, --kill false).
`;

/** Help for every command, or for one. */
export function helpText(command?: CommandSpec): string {
  if (command) return commandHelp(command, command.name.length) + '\n' + SYNTAX_NOTE;
  const width = Math.max(...COMMANDS.map((c) => c.name.length), 'help [command]'.length);
  let text = 'Commands:\n\n';
  for (const c of COMMANDS) text += commandHelp(c, width);
  text += `${'help [command]'.padEnd(width)}  Show this help, or one command's (also: <command> --help).\n`;
  text += `${'exit'.padEnd(width)}  Leave the prompt (also: quit, Ctrl-D).\n\n`;
  return text + SYNTAX_NOTE;
}
