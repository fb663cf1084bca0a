#!/usr/bin/env bash
# Stops every process the local network started (by recorded pid) and removes its state.
# `npm run fabric:down`. Set FABRIC_KEEP_STATE=1 to stop the processes but keep the ledgers.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
for name in chaincode peer0.org1 peer0.org2 orderer; do stop_node "$name"; done
if [[ "${FABRIC_KEEP_STATE:-0}" != 1 ]]; then
  rm -rf "$RUN_DIR"
  rm -rf "$NET_DIR/../chaincode/dist"
fi
log "network down"
