#!/usr/bin/env bash
# Keeps the crate map of ARCHITECTURE.md true: leaves depend on store only, store on nothing of
# ours, and only the gateway (and test/bench tooling) knows poem.
set -euo pipefail
cd "$(dirname "$0")/.."

deps() { cargo tree -p "$1" -e normal --prefix none --no-dedupe 2>/dev/null | awk '{print $1}' | sort -u; }
fail=0

for leaf in payments push media; do
  bad=$(deps "minigate-$leaf" | grep -E '^minigate-' | grep -vE "^minigate-($leaf|store)$" || true)
  if [ -n "$bad" ]; then echo "error: minigate-$leaf may depend on minigate-store only, found: $bad"; fail=1; fi
done
bad=$(deps minigate-store | grep -E '^minigate-' | grep -v '^minigate-store$' || true)
if [ -n "$bad" ]; then echo "error: minigate-store depends on $bad"; fail=1; fi
for crate in store payments push media resolvers schema; do
  if deps "minigate-$crate" | grep -qx poem; then echo "error: minigate-$crate must not depend on poem"; fail=1; fi
done
bad=$(deps minigate-resolvers | grep -E '^minigate-(schema|gateway)$' || true)
if [ -n "$bad" ]; then echo "error: minigate-resolvers depends on $bad"; fail=1; fi
# The fakes (test tooling and the development payment simulator) reach production code only
# through the gateway, which refuses the simulator in production mode.
for crate in resolvers schema; do
  if deps "minigate-$crate" | grep -qx minigate-fakes; then echo "error: minigate-$crate must not depend on minigate-fakes"; fail=1; fi
done
[ "$fail" = 0 ] && echo "crate layers ok"
exit "$fail"
