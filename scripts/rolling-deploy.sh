#!/usr/bin/env bash
# Rolling deploy of Flask-SocketIO workers behind flaskedge edges, one
# worker at a time (docs/SCALING.md, "Rolling deploys"):
#
#   1. drain it on every edge (admin API): no new sessions go to it;
#   2. wait until no edge has a live session on it, or WAIT seconds
#      (an edge's drain_timeout closes the rest, and their clients
#      reconnect at once to another worker);
#   3. restart it with the restart command;
#   4. wait until it answers its health URL;
#   5. undrain it on every edge, wait until every edge's own health
#      check sees it healthy (so that, while the next worker drains,
#      new sessions have somewhere to go), and go on with the next.
#
# Usage:
#   scripts/rolling-deploy.sh -a ADMIN[,ADMIN...] -r 'RESTART {addr}' [-h 'HEALTH_URL {addr}'] [-w WAIT] WORKER...
#
#   -a  the edges' admin endpoints, host:port, comma-separated
#   -r  the command that restarts one worker; {addr} is its host:port
#   -h  the URL that answers 2xx once a worker is up (default http://{addr}/healthz)
#   -w  seconds to wait for a drained worker's sessions to end (default 60)
#
# CURL_HEALTH_OPTS holds curl options for the health URL, e.g.
# "--cacert /etc/caddy/workers-ca.pem" for workers that serve TLS.
#
# Example, against `make demo`:  make demo-deploy
set -euo pipefail

admins="" restart="" health='http://{addr}/healthz' wait=60
while getopts 'a:r:h:w:' opt; do
	case $opt in
	a) admins=$OPTARG ;;
	r) restart=$OPTARG ;;
	h) health=$OPTARG ;;
	w) wait=$OPTARG ;;
	*) sed -n '2,25p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
if [[ -z $admins || -z $restart || $# -eq 0 ]]; then
	sed -n '2,25p' "$0" >&2
	exit 2
fi
IFS=, read -ra edges <<<"$admins"

log() { printf '%s rolling-deploy: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# admin METHOD EDGE PATH: the admin API's answer; fails on an HTTP error.
admin() {
	curl -fsS -X "$1" "http://$2$3"
}

# sessions EDGE ADDR: the live sessions of worker ADDR on that edge.
sessions() {
	admin GET "$1" /socketio/upstreams | /usr/bin/python3 -c '
import json, sys
addr = sys.argv[1]
print(sum(u["sessions"] for u in json.load(sys.stdin) if u["address"] == addr))' "$2"
}

# healthy EDGE ADDR: succeeds when that edge takes new sessions for ADDR.
healthy() {
	admin GET "$1" /socketio/upstreams | /usr/bin/python3 -c '
import json, sys
addr = sys.argv[1]
sys.exit(0 if any(u["address"] == addr and u["healthy"] and not u["draining"] for u in json.load(sys.stdin)) else 1)' "$2"
}

for addr in "$@"; do
	log "$addr: draining on ${edges[*]}"
	for e in "${edges[@]}"; do admin POST "$e" "/socketio/upstreams/$addr/drain" >/dev/null; done

	deadline=$((SECONDS + wait))
	while :; do
		left=0
		for e in "${edges[@]}"; do left=$((left + $(sessions "$e" "$addr"))); done
		((left == 0)) && break
		if ((SECONDS >= deadline)); then
			log "$addr: $left sessions left after ${wait}s; restarting anyway (their clients reconnect elsewhere)"
			break
		fi
		sleep 1
	done

	log "$addr: restarting"
	sh -c "${restart//\{addr\}/$addr}"

	url=${health//\{addr\}/$addr}
	for i in $(seq 1 120); do
		# shellcheck disable=SC2086 # the options are words
		curl -fsS -o /dev/null ${CURL_HEALTH_OPTS:-} "$url" 2>/dev/null && break
		((i == 120)) && { log "$addr: not healthy at $url after 60s; it stays drained"; exit 1; }
		sleep 0.5
	done

	for e in "${edges[@]}"; do admin DELETE "$e" "/socketio/upstreams/$addr/drain" >/dev/null; done
	for e in "${edges[@]}"; do
		for i in $(seq 1 120); do
			healthy "$e" "$addr" && break
			((i == 120)) && { log "$addr: edge $e does not see it healthy after 60s; stopping here"; exit 1; }
			sleep 0.5
		done
	done
	log "$addr: back in rotation"
done
log "done: ${*}"
