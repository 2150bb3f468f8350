// server.mjs is the benchmark's reference Socket.IO backend: the official
// Node server (npm socket.io, pinned in package-lock.json) with one
// acknowledged event, "echo", whose ack returns the payload and the
// backend's name, so a client can tell which backend answered it.
//
// Usage: node bench/server.mjs <name>
// It listens on a free loopback port and prints {"port": N} on stdout once
// it accepts connections.

import { createServer } from "node:http";
import { Server } from "socket.io";

const name = process.argv[2];
if (!name) {
  process.stderr.write("usage: node bench/server.mjs <name>\n");
  process.exit(2);
}

const http = createServer();
// Socket.IO's defaults otherwise: both transports, pingInterval 25s,
// pingTimeout 20s, no permessage-deflate (so every proxy relays the same
// bytes).
const io = new Server(http, { perMessageDeflate: false });
io.on("connection", (socket) => {
  socket.on("echo", (data, ack) => {
    if (typeof ack === "function") ack({ data, backend: name });
  });
});

http.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: http.address().port }) + "\n");
});

for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
