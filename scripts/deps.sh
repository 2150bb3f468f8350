#!/usr/bin/env bash
# Installs what the demo and the tests need, when it is missing, from
# Debian's packages (PyPI is not used: Flask-SocketIO comes from Debian).
# Usage: scripts/deps.sh [test|demo]
set -euo pipefail

need=()
py=/usr/bin/python3
if ! [ -x "$py" ] || ! "$py" -c 'import flask, flask_socketio, eventlet, redis' 2>/dev/null; then
	need+=(python3 python3-flask python3-flask-socketio python3-eventlet python3-redis)
fi
command -v redis-server >/dev/null || need+=(redis-server)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v curl >/dev/null || need+=(curl)
# The browser tests (test/browser) drive Debian's Chromium with
# playwright-core; Playwright's own browser downloads are never used.
[ -x /usr/bin/chromium ] || need+=(chromium)

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

if [ ${#need[@]} -gt 0 ]; then
	echo "deps: installing from Debian: ${need[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# The official Socket.IO client (tests, demo page), pinned by package-lock.json.
if ! [ -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
	echo "deps: npm ci"
	npm ci --no-audit --no-fund --loglevel=error
fi

# Config reloads: with net.ipv4.tcp_migrate_req=1 the kernel hands the
# connections queued on the old config's SO_REUSEPORT listener to the new
# one instead of resetting them, as the edge advises when it starts. The
# reload tests need it; a demo reloaded under load is better with it.
if [ "$(cat /proc/sys/net/ipv4/tcp_migrate_req 2>/dev/null)" = 0 ]; then
	echo "deps: sysctl -w net.ipv4.tcp_migrate_req=1"
	$sudo sysctl -q -w net.ipv4.tcp_migrate_req=1 ||
		echo "deps: could not set net.ipv4.tcp_migrate_req=1: the reload tests need it" >&2
fi
