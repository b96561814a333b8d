// The protocol benchmark's baseline server, run in its own process: a unix socket
// server that sends every byte back as it comes. Ping and Echo requests are
// byte-identical to their responses, so a client sees exactly the frames the
// daemon would answer, from a server that does nothing but socket I/O.
//
//   node bench/protocol/raw-echo-server.ts SOCKET_PATH   (forked, with an IPC channel)
import net from 'node:net';

const socketPath = process.argv[2];
if (!socketPath || !process.send) {
  console.error('usage: fork raw-echo-server.ts SOCKET_PATH (needs an IPC channel)');
  process.exit(2);
}

const server = net.createServer((socket) => {
  socket.on('error', () => socket.destroy());
  socket.pipe(socket);
});
server.on('error', (err) => {
  console.error(`raw echo server: ${err.message}`);
  process.exit(1);
});
server.listen(socketPath, () => process.send!({ listening: socketPath }));

// The parent going away, however it went, closes the IPC channel: leave with it.
process.on('disconnect', () => process.exit(0));
