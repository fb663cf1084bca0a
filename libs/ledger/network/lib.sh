# Shared settings and helpers of the local Fabric network scripts (sourced, not run).
# Everything listens on 127.0.0.1. State lives in network/.run (git-ignored).
NET_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(cd "$NET_DIR/../../.." && pwd)"
RUN_DIR="${FABRIC_RUN_DIR:-$NET_DIR/.run}"
FABRIC_VERSION=3.1.5
FABRIC_CACHE="${FABRIC_BIN_CACHE:-$HOME/.cache/fhir-gateway/fabric-v${FABRIC_VERSION}}"
BIN_DIR="$FABRIC_CACHE/bin"
NODE_BIN="$ROOT_DIR/node_modules/.bin/node"

CHANNEL=hospitals
CC_NAME=fhirledger
CC_LABEL=fhirledger_1
CC_ADDRESS=127.0.0.1:9999

ORDERER_PORT=7050
ORDERER_ADMIN_PORT=7053
ORDERER_OPS_PORT=9443
# org -> peer port, chaincode-callback port, operations port
declare -A PEER_PORT=([org1]=7051 [org2]=9051)
declare -A PEER_CC_PORT=([org1]=7052 [org2]=9052)
declare -A PEER_OPS_PORT=([org1]=9444 [org2]=9445)
declare -A ORG_MSP=([org1]=Org1MSP [org2]=Org2MSP)

CRYPTO="$RUN_DIR/crypto"
ORDERER_HOME="$CRYPTO/ordererOrganizations/example.com/orderers/orderer.example.com"
ORDERER_TLS_CA="$ORDERER_HOME/tls/ca.crt"
ORDERER_ADMIN_HOME="$CRYPTO/ordererOrganizations/example.com/users/Admin@example.com"

log() { printf '[fabric %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

peer_home() { echo "$CRYPTO/peerOrganizations/$1.example.com/peers/peer0.$1.example.com"; }

pid_file() { echo "$RUN_DIR/pids/$1.pid"; }

is_alive() {
  local f
  f="$(pid_file "$1")"
  [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 what=$2 tries=${3:-150}
  for ((i = 0; i < tries; i++)); do
    port_open "$port" && return 0
    sleep 0.2
  done
  die "$what did not open 127.0.0.1:$port (see $RUN_DIR/logs)"
}

wait_port_closed() {
  for ((i = 0; i < 100; i++)); do
    port_open "$1" || return 0
    sleep 0.1
  done
}

# Refuses to start a node whose port is already taken by a process this network did not start
# (another checkout's network, say): waiting for the port would otherwise succeed wrongly.
assert_port_free() {
  port_open "$1" && die "127.0.0.1:$1 ($2) is already in use by another process; stop it (or its network) first"
  return 0
}

# Starts "$@" in its own session so it outlives the calling npm script; records its pid.
spawn() {
  local name=$1
  shift
  mkdir -p "$RUN_DIR/pids" "$RUN_DIR/logs"
  setsid "$@" >>"$RUN_DIR/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$(pid_file "$name")"
}

stop_node() {
  local name=$1 f pid
  f="$(pid_file "$name")"
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

start_orderer() {
  is_alive orderer && return 0
  assert_port_free $ORDERER_PORT orderer
  assert_port_free $ORDERER_ADMIN_PORT "orderer admin"
  log "starting orderer on 127.0.0.1:$ORDERER_PORT (admin :$ORDERER_ADMIN_PORT)"
  spawn orderer env \
    FABRIC_CFG_PATH="$RUN_DIR/config" \
    FABRIC_LOGGING_SPEC="${FABRIC_LOGGING_SPEC:-info}" \
    ORDERER_GENERAL_LISTENADDRESS=127.0.0.1 \
    ORDERER_GENERAL_LISTENPORT=$ORDERER_PORT \
    ORDERER_GENERAL_LOCALMSPID=OrdererMSP \
    ORDERER_GENERAL_LOCALMSPDIR="$ORDERER_HOME/msp" \
    ORDERER_GENERAL_TLS_PRIVATEKEY="$ORDERER_HOME/tls/server.key" \
    ORDERER_GENERAL_TLS_CERTIFICATE="$ORDERER_HOME/tls/server.crt" \
    ORDERER_GENERAL_TLS_ROOTCAS="[$ORDERER_TLS_CA]" \
    ORDERER_GENERAL_BOOTSTRAPMETHOD=none \
    ORDERER_CHANNELPARTICIPATION_ENABLED=true \
    ORDERER_ADMIN_LISTENADDRESS=127.0.0.1:$ORDERER_ADMIN_PORT \
    ORDERER_ADMIN_TLS_CERTIFICATE="$ORDERER_HOME/tls/server.crt" \
    ORDERER_ADMIN_TLS_PRIVATEKEY="$ORDERER_HOME/tls/server.key" \
    ORDERER_ADMIN_TLS_CLIENTROOTCAS="[$ORDERER_TLS_CA]" \
    ORDERER_OPERATIONS_LISTENADDRESS=127.0.0.1:$ORDERER_OPS_PORT \
    ORDERER_FILELEDGER_LOCATION="$RUN_DIR/data/orderer" \
    ORDERER_CONSENSUS_WALDIR="$RUN_DIR/data/orderer/etcdraft/wal" \
    ORDERER_CONSENSUS_SNAPDIR="$RUN_DIR/data/orderer/etcdraft/snapshot" \
    "$BIN_DIR/orderer"
  wait_port $ORDERER_PORT orderer
  wait_port $ORDERER_ADMIN_PORT "orderer admin"
}

start_peer() {
  local org=$1 home
  is_alive "peer0.$org" && return 0
  home="$(peer_home "$org")"
  assert_port_free "${PEER_PORT[$org]}" "peer0.$org"
  assert_port_free "${PEER_CC_PORT[$org]}" "peer0.$org chaincode callback"
  log "starting peer0.$org on 127.0.0.1:${PEER_PORT[$org]}"
  spawn "peer0.$org" env \
    FABRIC_CFG_PATH="$RUN_DIR/config" \
    FABRIC_LOGGING_SPEC="${FABRIC_LOGGING_SPEC:-info}" \
    CORE_PEER_ID="peer0.$org.example.com" \
    CORE_PEER_ADDRESS=127.0.0.1:${PEER_PORT[$org]} \
    CORE_PEER_LISTENADDRESS=127.0.0.1:${PEER_PORT[$org]} \
    CORE_PEER_CHAINCODEADDRESS=127.0.0.1:${PEER_CC_PORT[$org]} \
    CORE_PEER_CHAINCODELISTENADDRESS=127.0.0.1:${PEER_CC_PORT[$org]} \
    CORE_PEER_GOSSIP_BOOTSTRAP=127.0.0.1:${PEER_PORT[$org]} \
    CORE_PEER_GOSSIP_ENDPOINT=127.0.0.1:${PEER_PORT[$org]} \
    CORE_PEER_GOSSIP_EXTERNALENDPOINT=127.0.0.1:${PEER_PORT[$org]} \
    CORE_PEER_LOCALMSPID="${ORG_MSP[$org]}" \
    CORE_PEER_MSPCONFIGPATH="$home/msp" \
    CORE_PEER_TLS_ENABLED=true \
    CORE_PEER_TLS_CERT_FILE="$home/tls/server.crt" \
    CORE_PEER_TLS_KEY_FILE="$home/tls/server.key" \
    CORE_PEER_TLS_ROOTCERT_FILE="$home/tls/ca.crt" \
    CORE_PEER_FILESYSTEMPATH="$RUN_DIR/data/peer0.$org" \
    CORE_LEDGER_SNAPSHOTS_ROOTDIR="$RUN_DIR/data/peer0.$org/snapshots" \
    CORE_OPERATIONS_LISTENADDRESS=127.0.0.1:${PEER_OPS_PORT[$org]} \
    "$BIN_DIR/peer" node start
  wait_port "${PEER_PORT[$org]}" "peer0.$org"
}

start_chaincode() {
  is_alive chaincode && return 0
  local pkgid
  pkgid="$(cat "$RUN_DIR/cc/package-id")"
  assert_port_free "${CC_ADDRESS##*:}" chaincode
  log "starting chaincode server on $CC_ADDRESS ($pkgid)"
  # Run from the chaincode folder: fabric-chaincode-node loads ./package.json's main.
  spawn chaincode env -C "$NET_DIR/../chaincode" CORE_CHAINCODE_LOGGING_LEVEL=warning \
    "$NODE_BIN" "$ROOT_DIR/node_modules/fabric-shim/cli.js" server \
    --chaincode-address="$CC_ADDRESS" --chaincode-id="$pkgid" --module-path="$NET_DIR/../chaincode"
  wait_port "${CC_ADDRESS##*:}" chaincode
}

# Runs a peer CLI command as the organisation's admin.
as_admin() {
  local org=$1
  shift
  env FABRIC_CFG_PATH="$RUN_DIR/config" FABRIC_LOGGING_SPEC=warning \
    CORE_PEER_LOCALMSPID="${ORG_MSP[$org]}" \
    CORE_PEER_MSPCONFIGPATH="$CRYPTO/peerOrganizations/$org.example.com/users/Admin@$org.example.com/msp" \
    CORE_PEER_ADDRESS=127.0.0.1:${PEER_PORT[$org]} \
    CORE_PEER_TLS_ENABLED=true \
    CORE_PEER_TLS_ROOTCERT_FILE="$(peer_home "$org")/tls/ca.crt" \
    "$BIN_DIR/peer" "$@"
}
