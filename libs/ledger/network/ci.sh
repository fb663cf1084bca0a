#!/usr/bin/env bash
# CI for the Fabric side of the ledger: build or reuse the binaries, start a fresh local network,
# run the Fabric conformance and fault suites, and always tear the network down.
# Exits non-zero on any failure. Run from anywhere: bash libs/ledger/network/ci.sh
# (The embedded-ledger conformance suite runs in `npm test`.)
set -euo pipefail
NET="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$NET/../../.." && pwd)"
cd "$ROOT"
t0=$(date +%s)
stamp() { echo "[ledger-ci +$(($(date +%s) - t0))s] $*"; }

[[ -x node_modules/.bin/node ]] || {
  echo "node_modules missing: run npm ci first" >&2
  exit 2
}

on_exit() {
  rc=$?
  if ((rc != 0)) && [[ -d "$NET/.run/logs" ]]; then
    echo "---- last lines of the network logs ----"
    for f in "$NET"/.run/logs/*.log; do
      echo "== $f"
      tail -n 10 "$f" | cut -c1-400 || true
    done
  fi
  bash "$NET/down.sh" || true
  stamp "done (exit $rc)"
  exit "$rc"
}
trap on_exit EXIT

stamp "fabric binaries"
bash "$NET/build-binaries.sh"
stamp "network: clean start"
bash "$NET/down.sh"
bash "$NET/up.sh"
stamp "Fabric conformance and fault suites"
npm run --silent test:fabric
