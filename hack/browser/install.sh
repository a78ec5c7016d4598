#!/usr/bin/env bash
# Installs Debian's chromium for the console's browser tests
# (server/console; docs/console.md). `make test` runs it first. As root
# it installs the package when it is missing; otherwise it only says what
# is missing: the browser tests then fail, naming this script.
set -euo pipefail

for b in chromium chromium-browser; do
	if command -v "$b" >/dev/null; then
		exit 0
	fi
done
if [ -n "${USERVE_CHROMIUM:-}" ] && [ -x "$USERVE_CHROMIUM" ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "[browser] chromium is missing; install it as root (apt-get install chromium) or set USERVE_CHROMIUM: the console's browser tests fail without it" >&2
	exit 0
fi
echo "[browser] installing Debian's chromium for the console's browser tests..." >&2
# A failed install must not stop the other tests: the browser tests then
# fail, saying chromium is missing.
if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
	echo "[browser] $(chromium --version 2>/dev/null || echo chromium installed)" >&2
else
	echo "[browser] installing chromium failed: the console's browser tests will fail" >&2
fi
