// The reference for the connection state recovery tests: the Node
// socket.io server with connectionStateRecovery, serving the same `count`
// and `count_acks` events as examples/flask_app (see its README) and
// logging connects and disconnects the way the app does, so that
// TestRecoveryScriptAgainstNodeServer can hold recover-run.mjs against the
// implementation the client was written for.
//
// Usage: node test/client/recover_server.mjs '{"port": 5001, "maxDisconnectionDurationMs": 10000}'
// Prints {"listening": port} on stdout once it accepts connections.
//
// The Node server stores the packets it broadcasts (to a sid's own room
// or any other) for recovery, but not those sent with an ack callback, so
// a stream cut off loses its ack kind (i % 4 == 1) here.
import { createServer } from "node:http";
import { Server } from "socket.io";

const cfg = JSON.parse(process.argv[2]);
const log = (event, socket) => process.stderr.write(`${new Date().toISOString()} node ${event} namespace=/ sid=${socket.id} user=-\n`);
const httpServer = createServer();
const io = new Server(httpServer, {
  cors: { origin: true },
  // A polling client cut off between two requests is only noticed when it
  // misses a ping, and the server stores a session for recovery only once
  // it has noticed: short pings let it notice within the cut.
  pingInterval: 500,
  pingTimeout: 500,
  connectionStateRecovery: { maxDisconnectionDuration: cfg.maxDisconnectionDurationMs, skipMiddlewares: true },
});
const sockets = new Map(); // sid → its latest socket (a recovered one replaces the old)
const acked = new Map(); // sid → numbers acknowledged

io.on("connection", (socket) => {
  sockets.set(socket.id, socket);
  if (socket.recovered) log("recovered", socket);
  else log("connect", socket);
  socket.on("disconnect", (reason) => {
    log("disconnect", socket);
    process.stderr.write(`  reason ${reason}\n`);
  });
  socket.on("count", (message, ack) => {
    const n = message?.n ?? 100;
    const interval = message?.interval_ms ?? 30;
    const sid = socket.id;
    const room = `count-${sid}`;
    socket.join(room);
    const got = acked.get(sid) ?? new Set();
    acked.set(sid, got);
    let i = 0;
    const next = () => {
      if (i === n) {
        io.to(sid).emit("count_done", { n });
        return;
      }
      const kind = i % 4;
      if (kind === 0) io.to(sid).emit("n", { i });
      else if (kind === 1) {
        const me = i;
        const s = sockets.get(sid);
        if (s.connected) s.emit("n", { i, ack: true }, () => got.add(me));
      } else if (kind === 2) io.to(sid).emit("n", { i, bin: Buffer.alloc(3, i % 256) });
      else io.to(room).emit("n", { i, room });
      i++;
      setTimeout(next, interval);
    };
    next();
    if (typeof ack === "function") ack({ n, sid });
  });
  socket.on("count_acks", (_, ack) => ack([...(acked.get(socket.id) ?? [])].sort((a, b) => a - b)));
});
httpServer.listen(cfg.port, "127.0.0.1", () => process.stdout.write(JSON.stringify({ listening: cfg.port }) + "\n"));
