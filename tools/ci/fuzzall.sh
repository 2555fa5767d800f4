#!/usr/bin/env bash
# Runs every `func FuzzXxx` in the module for a bounded time each (FUZZTIME,
# default 5s). go test -fuzz takes one target in one package per run, so we
# enumerate them. New targets are picked up without editing this file.
set -euo pipefail
fuzztime=${FUZZTIME:-5s}
status=0
while IFS=: read -r file _ line; do
	name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/' <<<"$line")
	pkg=./$(dirname "$file")
	echo "fuzz: $pkg $name ($fuzztime)"
	if ! go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "$pkg" >/tmp/hagent-fuzz.$$ 2>&1; then
		cat /tmp/hagent-fuzz.$$
		status=1
	fi
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' ha tools firmware 2>/dev/null || true)
rm -f /tmp/hagent-fuzz.$$
exit $status
