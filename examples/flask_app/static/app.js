// Demo page: Flask session login and the live state of the "/" and
// "/admin" Socket.IO namespaces, through the edge.
"use strict";

const $ = (id) => document.getElementById(id);

// Both namespaces share one Manager, hence one Engine.IO connection, as in
// a real app. The edge binds that connection to the user who opened it
// and refuses it to anyone else, so a login or logout must open a new
// one (see reconnect()).
const main = io({ autoConnect: false });
const admin = io("/admin", { autoConnect: false });
const manager = main.io;

function transportName() {
  return manager.engine ? manager.engine.transport.name : "?";
}

function showState(socket, el) {
  const show = (cls, text) => {
    el.className = "state " + cls;
    el.textContent = text;
  };
  socket.on("connect", () => show("connected", `connected (${transportName()})`));
  socket.on("disconnect", (reason) => show("disconnected", `disconnected (${reason})`));
  socket.on("connect_error", (err) => {
    const data = err.data ? " " + JSON.stringify(err.data) : "";
    show("error", `connect_error: ${err.message}${data}`);
  });
  // Called when a connection attempt starts.
  return () => show("connecting", "connecting");
}

const connectingMain = showState(main, $("state-main"));
const connectingAdmin = showState(admin, $("state-admin"));

// The transport starts as polling and upgrades to websocket when it can.
manager.on("open", () => {
  manager.engine.on("upgrade", () => {
    for (const [socket, el] of [[main, $("state-main")], [admin, $("state-admin")]]) {
      if (socket.connected) el.textContent = `connected (${transportName()})`;
    }
  });
});

// Automatic reconnection after a lost connection (not after a refusal).
manager.on("reconnect_attempt", () => {
  if (!main.connected) connectingMain();
});

function connect() {
  connectingMain();
  connectingAdmin();
  main.connect();
  admin.connect();
}

function reconnect() {
  // Disconnecting the last socket of a Manager closes its Engine.IO
  // connection; connecting again performs a fresh handshake with the
  // current cookie.
  admin.disconnect();
  main.disconnect();
  connect();
}

async function whoami() {
  const res = await fetch("/api/whoami", { credentials: "same-origin" });
  $("whoami").textContent = `${res.status} ${await res.text()}`.trim();
}

async function post(path, body) {
  const res = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
  });
  if (!res.ok) $("whoami").textContent = `${path}: ${res.status} ${await res.text()}`;
  await whoami();
  reconnect();
}

$("login-user").onclick = () => post("/login", { username: "alice", role: "user" });
$("login-admin").onclick = () => post("/login", { username: "root", role: "admin" });
$("logout").onclick = () => post("/logout");

$("echo").onclick = async () => {
  const started = performance.now();
  try {
    const ack = await main.timeout(5000).emitWithAck("echo", { at: Date.now() });
    const ms = (performance.now() - started).toFixed(1);
    $("echo-result").textContent = `${ms} ms, answered by ${ack.worker} over ${transportName()}`;
  } catch (err) {
    $("echo-result").textContent = `echo failed: ${err.message}`;
  }
};

$("join").onclick = async () => {
  try {
    const ack = await main.timeout(5000).emitWithAck("join", $("room").value);
    addLine(`joined ${ack.room} on ${ack.worker}`);
  } catch (err) {
    addLine(`join failed: ${err.message}`);
  }
};

$("room-form").onsubmit = async (event) => {
  event.preventDefault();
  try {
    await main.timeout(5000).emitWithAck("broadcast", { room: $("room").value, data: $("message").value });
  } catch (err) {
    addLine(`broadcast failed: ${err.message}`);
  }
};

main.on("broadcast", (msg) => addLine(`[${msg.room}] ${JSON.stringify(msg.data)} (sent via ${msg.worker})`));

$("stats").onclick = async () => {
  try {
    const ack = await admin.timeout(5000).emitWithAck("stats");
    $("stats-result").textContent = JSON.stringify(ack);
  } catch (err) {
    $("stats-result").textContent = `stats failed: ${err.message}`;
  }
};

function addLine(text) {
  const li = document.createElement("li");
  li.textContent = text;
  $("broadcasts").prepend(li);
}

whoami();
connect();
