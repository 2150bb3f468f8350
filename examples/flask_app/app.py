"""Demo and test backend for flaskedge: a real Flask-SocketIO app.

It is what the edge is tested against and what the demo page talks to:
Flask's signed session cookie carries `_user_id` (a string, as Flask-Login
stores it) and `role`; Socket.IO runs on eventlet because Debian has no
simple-websocket, so the threading mode would have no WebSocket transport.

Configuration (environment):
  FLASK_SECRET_KEY      required; the edge verifies cookies with the same key
  FLASK_HOST            default 127.0.0.1
  FLASK_PORT            default 5001
  WORKER_NAME           default host:port; reported in acks and /healthz
  REDIS_URL             optional; Socket.IO message queue shared by workers
  CORS_ALLOWED_ORIGINS  optional comma list; unset means no Origin checks
  ROLE_OVERRIDES        optional "user:role,..."; stands in for a user database
                        (see current_user), for the edge's whoami tests
  PING_INTERVAL, PING_TIMEOUT
                        optional, seconds; Engine.IO's ping interval and timeout
                        (python-engineio's defaults: 25 and 20)
  TLS_CERT, TLS_KEY     optional PEM files; with both, the worker serves HTTPS and
                        WSS only (eventlet's TLS), for an edge on another host
                        (socketio_proxy's `transport http { tls_trust_pool ... }`)
  TLS_CLIENT_CA         optional PEM file, with TLS_CERT: accept only clients
                        presenting a certificate from this CA (mTLS; the edge's
                        `tls_client_auth <cert> <key>`)
  DRAIN_FILE            optional path; while that file exists, /healthz answers
                        410, which the edge reads as "draining for a deploy"
                        (health_drain_status): no new sessions, live ones go on
  OTHER_ORIGIN          optional; the demo's page on an origin the edge refuses,
                        linked from the demo page
  ROLES_FILE            optional path of a JSON object {"user": "role"}, read on
                        every lookup and taking precedence over ROLE_OVERRIDES:
                        a user database whose roles change while the app runs

Run: /usr/bin/python3 examples/flask_app/app.py
"""

# eventlet must patch the standard library before anything else imports it,
# or the Redis message queue blocks the whole worker.
import eventlet

eventlet.monkey_patch()

import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from flask import Flask, jsonify, render_template, request, session  # noqa: E402
from flask_socketio import (  # noqa: E402
    ConnectionRefusedError,
    SocketIO,
    disconnect,
    emit,
    join_room,
)

ROLES = ("user", "admin")


def fail(message):
    print(f"flask_app: {message}", file=sys.stderr)
    sys.exit(2)


def cors_allowed_origins(value):
    """Map CORS_ALLOWED_ORIGINS to python-engineio's cors_allowed_origins.

    Unset or empty gives [], which python-engineio 4.3.4 treats as "CORS
    handling disabled": it neither checks Origin nor sends any
    Access-Control-* header. That is deliberate: the edge's edge_cors is the
    origin authority, and the workers listen on loopback only, reachable
    through the edge alone. None would instead accept only scheme://Host,
    refusing requests the edge has already allowed, and any engineio CORS
    headers would be added next to the edge's, which browsers reject.
    """
    if value is None or not value.strip():
        return []
    origins = [o.strip() for o in value.split(",") if o.strip()]
    if origins == ["*"]:
        return "*"
    return origins


secret_key = os.environ.get("FLASK_SECRET_KEY", "")
if not secret_key:
    fail(
        "FLASK_SECRET_KEY is not set; set it to the secret the edge's "
        "flask_session uses, e.g. FLASK_SECRET_KEY=$(openssl rand -hex 32)"
    )
host = os.environ.get("FLASK_HOST", "127.0.0.1")
try:
    port = int(os.environ.get("FLASK_PORT", "5001"))
except ValueError:
    fail(f"FLASK_PORT={os.environ['FLASK_PORT']!r} is not a port number")
worker = os.environ.get("WORKER_NAME") or f"{host}:{port}"
try:
    role_overrides = dict(
        item.split(":", 1)
        for item in os.environ.get("ROLE_OVERRIDES", "").split(",")
        if item
    )
except ValueError:
    fail(f"ROLE_OVERRIDES={os.environ['ROLE_OVERRIDES']!r} is not user:role,...")

logging.basicConfig(
    stream=sys.stderr,
    level=logging.INFO,
    format=f"%(asctime)s {worker} %(message)s",
)
log = logging.getLogger("flask_app")

app = Flask(__name__)
app.config.update(
    SECRET_KEY=secret_key,
    SESSION_COOKIE_SAMESITE="Lax",
)
ping = {
    key: float(os.environ[name])
    for key, name in (("ping_interval", "PING_INTERVAL"), ("ping_timeout", "PING_TIMEOUT"))
    if os.environ.get(name)
}
socketio = SocketIO(
    app,
    async_mode="eventlet",
    **ping,
    message_queue=os.environ.get("REDIS_URL") or None,
    cors_allowed_origins=cors_allowed_origins(
        os.environ.get("CORS_ALLOWED_ORIGINS")
    ),
)

# Connected Socket.IO sids per namespace, for /admin "stats". Per worker:
# with several workers each one counts only its own clients.
connected = {"/": set(), "/admin": set()}


def current_user():
    # A real app would read the role from its user database; ROLE_OVERRIDES
    # plays that database, so a role can differ from the one in the cookie
    # and the edge's whoami lookup can be told apart from the cookie's role.
    user_id = session.get("_user_id")
    role = role_overrides.get(user_id, session.get("role"))
    roles_file = os.environ.get("ROLES_FILE")
    if roles_file and user_id:
        try:
            with open(roles_file) as f:
                role = json.load(f).get(user_id, role)
        except FileNotFoundError:
            pass
    return {"id": user_id, "role": role}


@app.get("/")
def index():
    return render_template("index.html", worker=worker, other_origin=os.environ.get("OTHER_ORIGIN"))


@app.get("/healthz")
def healthz():
    # A deploy tool (or the app on SIGTERM) creates DRAIN_FILE to have the
    # edge stop sending new sessions here before the restart.
    drain_file = os.environ.get("DRAIN_FILE")
    if drain_file and os.path.exists(drain_file):
        return f"draining {worker}\n", 410, {"Content-Type": "text/plain; charset=utf-8"}
    return f"ok {worker}\n", 200, {"Content-Type": "text/plain; charset=utf-8"}


@app.post("/login")
def login():
    # A fixture, not an authentication example: whoever asks gets the role
    # they ask for, so tests and the demo can produce user and admin cookies.
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        body = request.form
    username = str(body.get("username") or "").strip()
    role = body.get("role") or "user"
    if not username:
        return jsonify(error="username is required"), 400
    if role not in ROLES:
        return jsonify(error=f"role must be one of {', '.join(ROLES)}"), 400
    session.clear()
    session["_user_id"] = username
    session["role"] = role
    session.permanent = True
    return jsonify(current_user() | {"worker": worker})


@app.post("/logout")
def logout():
    session.clear()
    return jsonify(id=None, role=None, worker=worker)


@app.get("/api/whoami")
def whoami():
    user = current_user() | {"worker": worker}
    return jsonify(user), (200 if user["id"] else 401)


@app.get("/api/edge-identity")
def edge_identity():
    # What the edge's flask_session told this worker: behind the edge, an
    # app can read the verified user from these headers instead of
    # re-checking the cookie. "environ" lists every WSGI key that a header
    # spelling could have landed in, to show that no client copy got
    # through.
    return jsonify(
        user_id=request.headers.get("X-Auth-User-Id"),
        role=request.headers.get("X-Auth-Role"),
        environ={k: v for k, v in request.environ.items() if k.startswith("HTTP_X_AUTH")},
        worker=worker,
    )


def log_connection(event, namespace):
    user = session.get("_user_id") or "-"
    log.info("%s namespace=%s sid=%s user=%s", event, namespace, request.sid, user)


@socketio.on("connect")
def on_connect(auth=None):
    connected["/"].add(request.sid)
    log_connection("connect", "/")


@socketio.on("disconnect")
def on_disconnect():
    connected["/"].discard(request.sid)
    log_connection("disconnect", "/")
    count_acked.pop(request.sid, None)


@socketio.on("echo")
def on_echo(data=None):
    return {"data": data, "worker": worker, "sid": request.sid}


@socketio.on("kick")
def on_kick(_=None):
    # The app ending a connection itself, as one would a banned user's:
    # the client sees a server-side disconnect, not a network failure.
    log_connection("kicked", "/")
    disconnect()


@socketio.on("join")
def on_join(room):
    join_room(room)
    return {"room": room, "worker": worker, "sid": request.sid}


@socketio.on("broadcast")
def on_broadcast(message):
    room = message.get("room") if isinstance(message, dict) else None
    if not room:
        return {"error": 'broadcast needs {"room": ..., "data": ...}'}
    emit(
        "broadcast",
        {"room": room, "data": message.get("data"), "from": request.sid,
         "worker": worker},
        to=room,
    )
    return {"room": room, "worker": worker, "sid": request.sid}


# Numbers acknowledged by the client, per sid, for "count_acks".
count_acked = {}


@socketio.on("count")
def on_count(message=None):
    # A stream the client must receive whole, in order and once, even
    # across a network cut (the edge's connection state recovery is tested
    # with it): n numbered "n" events, i % 4 choosing how each is sent:
    # 0 plain, 1 with an ack callback, 2 binary, 3 to the room count-<sid>.
    message = message if isinstance(message, dict) else {}
    n = int(message.get("n", 100))
    interval = float(message.get("interval_ms", 30)) / 1000
    sid = request.sid
    room = f"count-{sid}"
    join_room(room)
    acked = count_acked.setdefault(sid, set())

    def run():
        for i in range(n):
            kind = i % 4
            if kind == 0:
                socketio.emit("n", {"i": i}, to=sid)
            elif kind == 1:
                socketio.emit("n", {"i": i, "ack": True}, to=sid,
                              callback=lambda *_, i=i: acked.add(i))
            elif kind == 2:
                socketio.emit("n", {"i": i, "bin": bytes([i % 256]) * 3}, to=sid)
            else:
                socketio.emit("n", {"i": i, "room": room}, to=room)
            socketio.sleep(interval)
        socketio.emit("count_done", {"n": n}, to=sid)

    socketio.start_background_task(run)
    return {"n": n, "sid": sid, "worker": worker}


@socketio.on("count_acks")
def on_count_acks(_=None):
    return sorted(count_acked.get(request.sid, ()))


@socketio.on("connect", namespace="/admin")
def on_admin_connect(auth=None):
    # Defence in depth: the edge refuses non-admins first, but a worker must
    # not rely on being reached only through the edge.
    if current_user()["role"] != "admin":
        log_connection("refused", "/admin")
        raise ConnectionRefusedError(
            "the /admin namespace requires the admin role; log in as an admin",
            {"reason": "role", "required": "admin"},
        )
    connected["/admin"].add(request.sid)
    log_connection("connect", "/admin")


@socketio.on("disconnect", namespace="/admin")
def on_admin_disconnect():
    if request.sid in connected["/admin"]:
        connected["/admin"].discard(request.sid)
        log_connection("disconnect", "/admin")


@socketio.on("stats", namespace="/admin")
def on_stats(_=None):
    return {"worker": worker,
            "connected": {ns: len(sids) for ns, sids in connected.items()}}


if __name__ == "__main__":
    # eventlet serves each connection in a green thread from a pool of
    # max_size (1,024 by default), and a WebSocket or a waiting long-poll
    # holds its thread for as long as it lasts: a stock worker stops
    # accepting at 1,024 live sessions. Behind the edge, size it for the
    # sessions one worker should carry.
    max_connections = int(os.environ.get("WORKER_MAX_CONNECTIONS", "10000"))
    tls_cert, tls_key = os.environ.get("TLS_CERT"), os.environ.get("TLS_KEY")
    if bool(tls_cert) != bool(tls_key):
        fail("TLS_CERT and TLS_KEY go together: set both (PEM files) to serve HTTPS, or neither")
    tls = {"certfile": tls_cert, "keyfile": tls_key} if tls_cert else {}
    client_ca = os.environ.get("TLS_CLIENT_CA")
    if client_ca:
        if not tls:
            fail("TLS_CLIENT_CA needs TLS_CERT and TLS_KEY: client certificates are asked for over TLS")
        import ssl
        tls.update(ca_certs=client_ca, cert_reqs=ssl.CERT_REQUIRED)
    log.info("listening on %s://%s:%d (up to %d connections)",
             "https" if tls else "http", host, port, max_connections)
    socketio.run(app, host=host, port=port, log_output=False, max_size=max_connections, **tls)
