#!/usr/bin/env bash
# Installs the proxies the benchmark compares the edge with, when they are
# missing: Debian's nginx-light and haproxy. The packages start their own
# services; the benchmark runs its own instances on free loopback ports,
# so those services are stopped again.
set -euo pipefail

need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
[ ${#need[@]} -eq 0 ] && exit 0

echo "bench: installing from Debian: ${need[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
for svc in nginx haproxy; do
	$sudo service "$svc" stop >/dev/null 2>&1 || true
done
