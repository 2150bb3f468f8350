// Demo page: Flask session login and the "/" and "/admin" Socket.IO
// namespaces through the edge's browser client (served by the edge at
// /socket.io-edge/client.js), which names every state and failure in
// plain language. Each namespace card shows the client's state, its
// message and what to do, and every transition in a log.
import { connect } from "/socket.io-edge/client.js";

const $ = (id) => document.getElementById(id);

const main = connect(window.io, { namespace: "/" });
const admin = connect(window.io, { namespace: "/admin" });

// show keeps a namespace card in step with its client.
function show(client, card) {
  const state = card.querySelector(".state");
  const message = card.querySelector(".message");
  const action = card.querySelector(".action");
  const log = card.querySelector(".states");
  client.on("state", (e) => {
    card.dataset.state = e.state;
    card.dataset.category = e.error?.category ?? "";
    state.className = "state " + e.state;
    state.textContent = e.state + (e.state === "connected" && e.transport ? ` (${e.transport})` : "") +
      (e.state === "connected" && e.recovered ? ", session recovered: no event lost" : "");
    message.textContent = e.error?.message ?? "";
    action.textContent = e.error?.action ?? "";
    const li = document.createElement("li");
    const wait = e.retryAfter ? `, waiting ${e.retryAfter} s` : e.delay ? `, next try in ${(e.delay / 1000).toFixed(1)} s` : "";
    li.textContent = `${new Date().toLocaleTimeString()} ${e.state}` + (e.error ? ` (${e.error.category}${wait})` : "") +
      (e.recovered ? " (recovered)" : "");
    log.prepend(li);
  });
}
show(main, $("main"));
show(admin, $("admin"));

async function whoami() {
  const res = await fetch("/api/whoami", { credentials: "same-origin" });
  const user = await res.json().catch(() => ({}));
  $("whoami").textContent = user.id ? `${user.id} (${user.role})` : "not logged in";
  // The edge's dashboard is for admins (flask_session checks the role).
  $("dashboard").hidden = user.role !== "admin";
}

// A login or logout changes who the connections belong to: the edge
// binds an Engine.IO session to the user who opened it, so both clients
// open new ones (retry()).
async function post(path, body) {
  const res = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
  });
  if (!res.ok) $("whoami").textContent = `${path}: ${res.status} ${await res.text()}`;
  await whoami();
  await Promise.all([main.retry(), admin.retry()]);
}

$("login-user").onclick = () => post("/login", { username: "alice", role: "user" });
$("login-admin").onclick = () => post("/login", { username: "root", role: "admin" });
$("logout").onclick = () => post("/logout");

function result(id, text) {
  $(id).textContent = text;
}

$("echo").onclick = async () => {
  const started = performance.now();
  try {
    const ack = await main.socket.timeout(5000).emitWithAck("echo", { at: Date.now() });
    result("echo-result", `${(performance.now() - started).toFixed(1)} ms, answered by ${ack.worker}`);
  } catch (err) {
    result("echo-result", `echo failed: ${err.message}`);
  }
};

// More messages at once than the edge's `rate_limit messages` allows: the
// edge closes the connection and says how long to wait; the client waits
// that long (suspended, rate_limited), then reconnects by itself.
$("flood").onclick = () => {
  for (let i = 0; i < 60; i++) main.socket.emit("echo", i);
  result("echo-result", "sent 60 messages at once");
};

// The app closing the connection itself (its "kick" event calls
// disconnect()): the client does not reconnect on its own.
$("kick").onclick = () => main.socket.emit("kick");
$("reconnect").onclick = () => main.retry();

$("join").onclick = async () => {
  try {
    const ack = await main.socket.timeout(5000).emitWithAck("join", $("room").value);
    addLine(`joined ${ack.room} on ${ack.worker}`);
  } catch (err) {
    addLine(`join failed: ${err.message}`);
  }
};

$("room-form").onsubmit = async (event) => {
  event.preventDefault();
  try {
    await main.socket.timeout(5000).emitWithAck("broadcast", { room: $("room").value, data: $("message").value });
  } catch (err) {
    addLine(`broadcast failed: ${err.message}`);
  }
};

// The socket.io-client Socket under the module is new after every
// retry(); listeners go on each one as it is made.
main.on("state", (e) => {
  if (e.state === "connected" && !main.socket.hasListeners("broadcast")) {
    main.socket.on("broadcast", (msg) => addLine(`[${msg.room}] ${JSON.stringify(msg.data)} (sent via ${msg.worker})`));
  }
});

// The edge's namespace rule decides: anonymous is not_logged_in, a plain
// user role_missing, an admin connects.
$("admin-connect").onclick = () => admin.retry();

$("stats").onclick = async () => {
  try {
    const ack = await admin.socket.timeout(5000).emitWithAck("stats");
    result("stats-result", JSON.stringify(ack));
  } catch (err) {
    result("stats-result", `stats failed: ${err.message}`);
  }
};

function addLine(text) {
  const li = document.createElement("li");
  li.textContent = text;
  $("broadcasts").prepend(li);
}

whoami();
