// Shows why a Node socket.io-client with a keep-alive agent can have a
// polling request hang at the instant of a `caddy reload` (see
// docs/BENCHMARKS.md, "Why a reload can lose a connection").
//
// engine.io-client polls through xmlhttprequest-ssl in Node. When a
// request on a reused keep-alive connection fails with ECONNRESET (what
// a client gets when it writes to a connection the old config's server
// has just closed), xmlhttprequest-ssl retries it on a new connection,
// but the retry never writes the body nor ends the request: the new
// connection carries no byte, the server waits for a request, the client
// for an answer.
//
// This server answers every request on a fresh connection and resets
// connection 1 on its second request. Run: node bench/reloadrace/xhr-retry.mjs
// It prints what each side saw and exits 1 if the retried request hung,
// 0 if it was answered.
import http from "node:http";
import net from "node:net";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const XHR = require("xmlhttprequest-ssl");
const version = require("xmlhttprequest-ssl/package.json").version;

const received = new Map(); // connection number → bytes
const server = net.createServer((sock) => {
  const id = received.size + 1;
  let requests = 0;
  received.set(id, 0);
  sock.on("error", () => {});
  sock.on("data", (d) => {
    received.set(id, received.get(id) + d.length);
    requests++;
    if (id === 1 && requests === 2) {
      console.log("server: connection 1, second request: reset");
      sock.resetAndDestroy();
      return;
    }
    console.log(`server: connection ${id}: ${JSON.stringify(d.toString().split("\r\n")[0])}, answered`);
    sock.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok");
  });
});

server.listen(0, "127.0.0.1", async () => {
  const url = `http://127.0.0.1:${server.address().port}/socket.io/?EIO=4&transport=polling`;
  const agent = new http.Agent({ keepAlive: true });
  const post = (body, waitMs) =>
    new Promise((resolve) => {
      const xhr = new XHR({ agent });
      const timer = setTimeout(() => resolve(null), waitMs);
      xhr.open("POST", url, true);
      xhr.onreadystatechange = () => {
        if (xhr.readyState === 4) {
          clearTimeout(timer);
          resolve(xhr.status);
        }
      };
      xhr.send(body);
    });

  console.log(`xmlhttprequest-ssl ${version}`);
  console.log(`client: first POST: status ${await post("42[\"echo\",1]", 3000)}`);
  const status = await post("42[\"echo\",2]", 3000);
  const bytes = [...received].map(([id, n]) => `connection ${id}: ${n} bytes`).join(", ");
  console.log(`server received: ${bytes}`);
  if (status === null) {
    console.log("client: second POST, retried after the reset, not answered after 3 s: it hung");
    process.exit(1);
  }
  console.log(`client: second POST: status ${status}`);
  process.exit(0);
});
