// What a thread and its spawner process say to each other over the spawner's
// stdin and stdout: frames of a 4-byte big-endian length and a JSON body. Both
// sides are ours and trusted; the bytes a command reads or writes travel base64
// encoded only where they may not be text (input). Plain JavaScript, as is the
// spawner process that loads it (see spawner-process.js); its types are in
// spawner-wire.d.ts.

/** Exit status of the shell that moves a command into SpawnOrder.joinCgroup, when it cannot. */
export const JOIN_CGROUP_FAILED = 97;

/** Encodes one message as a frame. */
export function frame(message) {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

/** Splits a byte stream into the JSON messages of its frames. */
export class FrameReader {
  buffered = Buffer.alloc(0);

  /** Feeds bytes; returns every message now complete. */
  push(chunk) {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const out = [];
    while (this.buffered.length >= 4) {
      const len = this.buffered.readUInt32BE(0);
      if (this.buffered.length < 4 + len) break;
      out.push(JSON.parse(this.buffered.toString('utf8', 4, 4 + len)));
      this.buffered = this.buffered.subarray(4 + len);
    }
    if (this.buffered.length === 0) this.buffered = Buffer.alloc(0);
    return out;
  }
}
