// Writes src/protocol/warden.json: warden.proto as protobufjs's JSON descriptor.
// The daemon loads the descriptor, which takes a fifth of the time of parsing the
// .proto at every start; test/unit/proto-json.test.ts fails when the two differ.
//
//   node scripts/lib/proto-json.ts     (after editing warden.proto)
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';

const dir = join(import.meta.dirname, '../../src/protocol');

/** The descriptor of warden.proto, as the daemon reads it. */
export function descriptorOf(protoText: string): string {
  const root = protobuf.parse(protoText, { keepCase: true }).root;
  return `${JSON.stringify(root.toJSON(), null, 1)}\n`;
}

if (import.meta.main) {
  writeFileSync(join(dir, 'warden.json'), descriptorOf(readFileSync(join(dir, 'warden.proto'), 'utf8')));
  process.stdout.write('proto-json: src/protocol/warden.json written from warden.proto\n');
}
