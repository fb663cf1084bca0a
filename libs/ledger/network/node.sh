#!/usr/bin/env bash
# Stops or starts one node of the running network, for the fault tests:
#   node.sh stop|start orderer|peer0.org1|peer0.org2|chaincode
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
action=${1:?stop|start} name=${2:?node name}
case "$action:$name" in
  stop:*) stop_node "$name" ;;
  start:orderer) start_orderer ;;
  start:peer0.org1) start_peer org1 ;;
  start:peer0.org2) start_peer org2 ;;
  start:chaincode) start_chaincode ;;
  *) die "unknown: $action $name" ;;
esac
