'use strict';
// TechEmpower /json and /plaintext on Node's own http module, one process.
//   node node_http.js [HOST] [PORT]     (PORT 0 picks a free port)
const http = require('http');

const host = process.argv[2] || '127.0.0.1';
const port = Number(process.argv[3] || 0);
const HELLO = 'Hello, World!';

const server = http.createServer((req, res) => {
  if (req.url === '/json') {
    const body = JSON.stringify({ message: HELLO }); // serialized per request
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(body),
    });
    res.end(body);
  } else if (req.url === '/plaintext') {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': HELLO.length });
    res.end(HELLO);
  } else {
    res.writeHead(404, { 'Content-Type': 'text/plain', 'Content-Length': 9 });
    res.end('not found');
  }
});

// Idle keep-alive connections stay open (the default closes them after 5 s).
server.keepAliveTimeout = 600 * 1000;
server.maxRequestsPerSocket = 0;

server.listen({ host, port, backlog: 4096 }, () => {
  console.log(`node: listening on ${host}:${server.address().port}`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => process.exit(0));
}
