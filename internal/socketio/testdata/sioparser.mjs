// sioparser.mjs runs the socket.io-parser that socket.io-client 4.x uses
// (from the repository's node_modules) on JSON lines from stdin and writes
// one JSON line for each:
//
//   {"decode": "42[...]", "attachments": n}
//       decodes the Engine.IO message (the leading "4" is dropped, as
//       engine.io-client does) with n one-byte attachments, Buffer [i],
//       and writes {"type", "nsp", "id", "data"} or {"error"};
//   {"connect": {"nsp": "/chat", "pid": "...", "offset": "...", "auth": {...}}}
//       writes {"text": "40..."}, the CONNECT socket.io-client's
//       _sendConnectPacket sends (build/esm/socket.js): pid, offset and
//       auth are each optional, as in the client.
import { createInterface } from "node:readline";
import { Decoder, Encoder, PacketType } from "socket.io-parser";

const encoder = new Encoder();

function decode(text, attachments) {
  const decoder = new Decoder();
  let out = null;
  decoder.on("decoded", (p) => {
    out = { type: p.type, nsp: p.nsp, id: p.id ?? null, data: p.data ?? null };
  });
  try {
    decoder.add(text.slice(1));
    for (let i = 0; i < attachments; i++) decoder.add(Buffer.from([i]));
  } catch (e) {
    return { error: String(e.message) };
  }
  return out ?? { error: "no packet decoded" };
}

function connect({ nsp = "/", pid, offset, auth }) {
  // The client's own expression: offset is undefined until an event
  // arrives, and JSON.stringify leaves it out.
  const data = pid ? Object.assign({ pid, offset }, auth) : auth;
  const [text] = encoder.encode({ type: PacketType.CONNECT, nsp, data });
  return { text: "4" + text };
}

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const e = JSON.parse(line);
  const res = "decode" in e ? decode(e.decode, e.attachments ?? 0) : connect(e.connect);
  process.stdout.write(JSON.stringify(res) + "\n");
}
