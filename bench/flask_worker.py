"""Runs examples/flask_app unchanged, with a larger eventlet connection pool.

The scale check (go run ./bench -scale) needs more than 1,024 concurrent
connections per worker. eventlet.wsgi.server serves each connection in one
green thread from a pool of max_size, which defaults to 1,024
(eventlet.wsgi.DEFAULT_MAX_SIMULTANEOUS_REQUESTS); a WebSocket or a waiting
long-poll holds its green thread for as long as it lasts, so a stock
worker stops accepting at 1,024 live sessions. socketio.run passes
max_size on to eventlet.wsgi.server; nothing else differs from
`python3 examples/flask_app/app.py`.

Usage: /usr/bin/python3 bench/flask_worker.py <max_size>
with app.py's environment (FLASK_SECRET_KEY, FLASK_PORT, WORKER_NAME, ...).
"""

import os
import sys

max_size = int(sys.argv[1])
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "flask_app"))

import app  # noqa: E402  (patches the standard library with eventlet first)

app.log.info("listening on http://%s:%d (eventlet pool %d)", app.host, app.port, max_size)
app.socketio.run(app.app, host=app.host, port=app.port, log_output=False, max_size=max_size)
