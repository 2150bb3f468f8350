#!/usr/bin/env bash
# make demo: the example Flask-SocketIO app behind the edge.
#
# Starts Redis (the workers' message queue), two workers of
# examples/flask_app and bin/caddy with examples/Caddyfile, serving
# https://localhost:8443 with a certificate from Caddy's internal CA, and
# a page on another origin, https://localhost:8444, that the edge refuses.
# Ctrl-C stops every process it started.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
run=$root/.cache/demo

# `demo.sh restart HOST:PORT` (make demo-deploy): stop that worker of a
# running demo; the demo starts it again.
if [[ ${1:-} == restart ]]; then
	pid=$(cat "$run/worker-${2##*:}.pid")
	kill "$pid"
	# Return once it has exited: the caller then waits for the new one.
	while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	exit 0
fi

export EDGE_HTTP_PORT=${EDGE_HTTP_PORT:-8080}
export EDGE_HTTPS_PORT=${EDGE_HTTPS_PORT:-8443}
export EDGE_OTHER_PORT=${EDGE_OTHER_PORT:-8444}
export WORKER1=${WORKER1:-127.0.0.1:5001}
export WORKER2=${WORKER2:-127.0.0.1:5002}
redis_port=${REDIS_PORT:-6390}
# One secret for both workers and the edge: the edge verifies the cookies
# the workers sign.
export FLASK_SECRET_KEY=${FLASK_SECRET_KEY:-$(head -c 32 /dev/urandom | base64 | tr -d '/+=')}
# Caddy's storage (the internal CA and its certificates) stays in the repo.
export XDG_DATA_HOME=$root/.cache/demo/data XDG_CONFIG_HOME=$root/.cache/demo/config
mkdir -p "$XDG_DATA_HOME" "$XDG_CONFIG_HOME" "$run"

pids=()
stop() {
	trap - INT TERM EXIT
	echo
	echo "demo: stopping"
	touch "$run/stopping"
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for f in "$run"/worker-*.pid; do [[ -e $f ]] && kill "$(cat "$f")" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap stop INT TERM EXIT

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for addr in "$WORKER1" "$WORKER2" "127.0.0.1:$redis_port" "127.0.0.1:$EDGE_HTTPS_PORT" "127.0.0.1:$EDGE_OTHER_PORT" "127.0.0.1:$EDGE_HTTP_PORT"; do
	if ! port_free "${addr##*:}"; then
		# eventlet listens with SO_REUSEPORT: a stale worker would share
		# the port and answer half the requests.
		echo "demo: port ${addr##*:} is in use; stop what holds it or set WORKER1/WORKER2/REDIS_PORT/EDGE_HTTPS_PORT/EDGE_OTHER_PORT/EDGE_HTTP_PORT" >&2
		exit 1
	fi
done

wait_for() { # url
	for _ in $(seq 1 200); do
		curl -fsk -o /dev/null "$1" && return 0
		sleep 0.1
	done
	echo "demo: $1 did not come up" >&2
	return 1
}

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning &
pids+=($!)
export REDIS_URL=redis://127.0.0.1:$redis_port/0

# Each worker runs under a loop that starts it again when it exits, as a
# process manager would: `make demo-deploy` restarts them one by one.
rm -f "$run/stopping"
for w in "$WORKER1" "$WORKER2"; do
	(
		while :; do
			FLASK_HOST=${w%:*} FLASK_PORT=${w##*:} WORKER_NAME="worker-${w##*:}" \
				OTHER_ORIGIN="https://localhost:$EDGE_OTHER_PORT" \
				/usr/bin/python3 examples/flask_app/app.py &
			echo $! >"$run/worker-${w##*:}.pid"
			wait $! || true
			[[ -e $run/stopping ]] && exit 0
			echo "demo: worker $w exited; starting it again" >&2
		done
	) &
	pids+=($!)
done
wait_for "http://$WORKER1/healthz"
wait_for "http://$WORKER2/healthz"

bin/caddy run --config examples/Caddyfile --adapter caddyfile &
pids+=($!)
wait_for "https://localhost:$EDGE_HTTPS_PORT/healthz"
wait_for "https://localhost:$EDGE_OTHER_PORT/"

app=https://localhost:$EDGE_HTTPS_PORT
echo
echo "  The demo is up:"
url() { printf '  %-49s %s\n' "$1" "$2"; }
url "$app/" "the app: log in, trip the rate limit, be refused /admin"
url "$app/_edge/dashboard/" "the edge's dashboard (log in as admin first)"
url "https://localhost:$EDGE_OTHER_PORT/" "a page on an origin the edge refuses"
url "$app/socket.io-edge/client.js" "the browser client both pages use"
url "http://localhost:$EDGE_HTTP_PORT/" "redirects to https"
url "http://${EDGE_ADMIN:-localhost:2019}/metrics" "Prometheus metrics (Caddy's admin endpoint)"
cat <<MSG
  Workers http://$WORKER1 and http://$WORKER2 share Redis at 127.0.0.1:$redis_port.
  Caddy's internal CA signed the certificate; its root is
  $XDG_DATA_HOME/caddy/pki/authorities/local/root.crt
  (import it into the browser, or accept the warning once).

  Ctrl-C stops everything.

MSG
wait -n "${pids[@]}"
echo "demo: a process exited; stopping the rest" >&2
