// src/protocol/warden.json (what the codec loads) must be warden.proto's descriptor:
// after an edit of the .proto, `node scripts/lib/proto-json.ts` writes it again.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { descriptorOf } from '../../scripts/lib/proto-json.ts';

const dir = join(import.meta.dirname, '../../src/protocol');

describe('warden.json', () => {
  it('is the descriptor of warden.proto as it is now (else run node scripts/lib/proto-json.ts)', () => {
    expect(readFileSync(join(dir, 'warden.json'), 'utf8')).toBe(descriptorOf(readFileSync(join(dir, 'warden.proto'), 'utf8')));
  });
});
