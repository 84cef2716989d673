#!/usr/bin/env bash
# Installs the local AWS stand-ins the lambdas tests run against:
#   dynalite  (npm, DynamoDB-compatible)      -> npm -g prefix (on PATH)
#   goaws     (go install, SNS only)          -> /usr/local/bin/goaws
# Idempotent and non-interactive: a tool already at the pinned version is left
# alone. Assumes Debian, root, and Node/npm and Go already present.
set -euo pipefail

DYNALITE_VERSION=4.0.0
GOAWS_MODULE=github.com/Admiral-Piett/goaws/app/cmd
GOAWS_VERSION=v0.4.4
BIN_DIR=${BIN_DIR:-/usr/local/bin}

have_dynalite() {
	command -v dynalite >/dev/null 2>&1 || return 1
	local v
	v=$(npm ls -g --depth=0 dynalite 2>/dev/null | sed -n 's/.*dynalite@\([0-9.]*\).*/\1/p' | head -n1)
	[ "$v" = "$DYNALITE_VERSION" ]
}

if have_dynalite; then
	echo "dynalite $DYNALITE_VERSION already installed"
else
	echo "installing dynalite $DYNALITE_VERSION"
	npm install -g --no-audit --no-fund --loglevel=error "dynalite@$DYNALITE_VERSION"
fi

# goaws' module builds a binary named "cmd"; install it under a temporary
# GOBIN and rename it so the name says what it is. A stamp file records the
# version, since the binary cannot report it.
stamp="$BIN_DIR/.goaws-version"
if [ -x "$BIN_DIR/goaws" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$GOAWS_VERSION" ]; then
	echo "goaws $GOAWS_VERSION already installed"
else
	echo "installing goaws $GOAWS_VERSION"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	GOBIN="$tmp" GOWORK=off GOFLAGS=-mod=mod go install "$GOAWS_MODULE@$GOAWS_VERSION"
	install -m 0755 "$tmp/cmd" "$BIN_DIR/goaws"
	echo "$GOAWS_VERSION" >"$stamp"
fi

command -v dynalite
"$BIN_DIR/goaws" -h >/dev/null 2>&1 || true
echo "lambdas test dependencies ready"
