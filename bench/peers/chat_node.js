'use strict';
// The chat server of pyparallel.examples.chat on Node's net module, one process,
// for bench/broadcast_bench.py.
//   node chat_node.js [HOST] [PORT] [MAX_BACKLOG]     (PORT 0 picks a free port)
// Every line a client sends goes to every client, the sender included; each read
// is split into lines and its complete lines go to every client in one write.
// The same limits as the example: a line over 4096 bytes closes the connection;
// a client whose unsent output passes MAX_BACKLOG bytes (default 1 MiB) is
// destroyed. No join/leave notices (the example runs with --no-notices).
const net = require('net');

const host = process.argv[2] || '127.0.0.1';
const port = Number(process.argv[3] || 0);
const maxBacklog = Number(process.argv[4] || 1 << 20);
const MAX_LINE = 4096;
const room = new Set();

const server = net.createServer((sock) => {
  sock.setNoDelay(true);
  room.add(sock);
  let partial = null;
  sock.on('data', (chunk) => {
    const data = partial ? Buffer.concat([partial, chunk]) : chunk;
    const end = data.lastIndexOf(10) + 1;
    partial = end < data.length ? data.subarray(end) : null;
    if (partial && partial.length > MAX_LINE) {
      sock.destroy();
      return;
    }
    if (!end) return;
    const lines = data.subarray(0, end);
    for (const peer of room) {
      peer.write(lines);
      if (peer.writableLength > maxBacklog) {
        room.delete(peer);
        peer.destroy();
      }
    }
  });
  sock.on('close', () => room.delete(sock));
  sock.on('error', () => room.delete(sock));
});

server.listen({ host, port, backlog: 4096 }, () => {
  console.log(`node: listening on ${host}:${server.address().port}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
