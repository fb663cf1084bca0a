#!/usr/bin/env bash
# Brings the local Fabric network up, or completes it when part of it is already there
# (idempotent): binaries, crypto material, channel, peers, chaincode-as-a-service and its
# definition. Plain processes on 127.0.0.1, no Docker. `npm run fabric:up`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bash "$NET_DIR/build-binaries.sh"
[[ -x "$NODE_BIN" ]] || die "Node 22 not found at $NODE_BIN: run npm ci at the repository root"
mkdir -p "$RUN_DIR"/{config,logs,pids,data,cc}

# Configuration: the project's files, with the binary cache folder filled in.
sed "s#@CCAAS_BUILDER_DIR@#$FABRIC_CACHE#" "$NET_DIR/config/core.yaml" >"$RUN_DIR/config/core.yaml"
cp "$NET_DIR/config/orderer.yaml" "$NET_DIR/config/configtx.yaml" "$RUN_DIR/config/"

if [[ ! -d "$CRYPTO" ]]; then
  log "generating crypto material (cryptogen)"
  "$BIN_DIR/cryptogen" generate --config="$NET_DIR/config/crypto-config.yaml" --output="$CRYPTO.tmp" >/dev/null
  mv "$CRYPTO.tmp" "$CRYPTO"
fi
if [[ ! -f "$RUN_DIR/$CHANNEL.block" ]]; then
  log "creating the genesis block of channel $CHANNEL (configtxgen)"
  FABRIC_CFG_PATH="$RUN_DIR/config" "$BIN_DIR/configtxgen" -profile HospitalsChannel -channelID "$CHANNEL" \
    -outputBlock "$RUN_DIR/$CHANNEL.block.tmp" 2>>"$RUN_DIR/logs/configtxgen.log"
  mv "$RUN_DIR/$CHANNEL.block.tmp" "$RUN_DIR/$CHANNEL.block"
fi

start_orderer
OSN=(-o 127.0.0.1:$ORDERER_ADMIN_PORT --ca-file "$ORDERER_TLS_CA" --client-cert "$ORDERER_ADMIN_HOME/tls/client.crt" --client-key "$ORDERER_ADMIN_HOME/tls/client.key")
if ! "$BIN_DIR/osnadmin" channel list "${OSN[@]}" 2>/dev/null | grep -q "\"$CHANNEL\""; then
  log "orderer joins channel $CHANNEL (osnadmin)"
  "$BIN_DIR/osnadmin" channel join --channelID "$CHANNEL" --config-block "$RUN_DIR/$CHANNEL.block" "${OSN[@]}" >/dev/null
fi

for org in org1 org2; do start_peer "$org"; done
for org in org1 org2; do
  if ! as_admin "$org" channel list 2>/dev/null | grep -qx "$CHANNEL"; then
    log "peer0.$org joins channel $CHANNEL"
    for ((i = 0; ; i++)); do
      as_admin "$org" channel join -b "$RUN_DIR/$CHANNEL.block" 2>>"$RUN_DIR/logs/cli.log" && break
      ((i < 20)) || die "peer0.$org could not join $CHANNEL"
      sleep 0.5
    done
  fi
done

# Chaincode code: the contracts compiled from libs/ledger/src (rebuilt when they change).
src_hash="$(cat "$NET_DIR"/../src/contracts/*.ts "$NET_DIR"/../src/canonical-json.ts "$NET_DIR"/../chaincode/package.json | sha256sum | cut -c1-16)"
if [[ "$(cat "$RUN_DIR/cc/src-hash" 2>/dev/null)" != "$src_hash" || ! -f "$NET_DIR/../chaincode/dist/contracts/index.js" ]]; then
  log "compiling the chaincode (tsc)"
  rm -rf "$NET_DIR/../chaincode/dist"
  (cd "$ROOT_DIR" && "$NODE_BIN" node_modules/typescript/bin/tsc -p libs/ledger/chaincode/tsconfig.json)
  echo "$src_hash" >"$RUN_DIR/cc/src-hash"
  stop_node chaincode
fi

# Chaincode package for the ccaas builder: only where the service listens, not the code.
if [[ ! -f "$RUN_DIR/cc/$CC_LABEL.tgz" ]]; then
  work="$(mktemp -d)"
  printf '{"address":"%s","dial_timeout":"10s","tls_required":false}\n' "$CC_ADDRESS" >"$work/connection.json"
  printf '{"type":"ccaas","label":"%s"}\n' "$CC_LABEL" >"$work/metadata.json"
  tar -C "$work" -czf "$work/code.tar.gz" connection.json
  tar -C "$work" -czf "$RUN_DIR/cc/$CC_LABEL.tgz" metadata.json code.tar.gz
  rm -rf "$work"
fi
as_admin org1 lifecycle chaincode calculatepackageid "$RUN_DIR/cc/$CC_LABEL.tgz" >"$RUN_DIR/cc/package-id"
PKGID="$(cat "$RUN_DIR/cc/package-id")"

for org in org1 org2; do
  if ! as_admin "$org" lifecycle chaincode queryinstalled 2>/dev/null | grep -q "$PKGID"; then
    log "installing $CC_LABEL on peer0.$org"
    as_admin "$org" lifecycle chaincode install "$RUN_DIR/cc/$CC_LABEL.tgz" 2>>"$RUN_DIR/logs/cli.log"
  fi
done
start_chaincode

ORDERER_ARGS=(-o 127.0.0.1:$ORDERER_PORT --tls --cafile "$ORDERER_TLS_CA")
if ! as_admin org1 lifecycle chaincode querycommitted -C "$CHANNEL" -n "$CC_NAME" >/dev/null 2>&1; then
  for org in org1 org2; do
    if ! as_admin "$org" lifecycle chaincode checkcommitreadiness -C "$CHANNEL" -n "$CC_NAME" -v 1 --sequence 1 -O json 2>/dev/null |
      grep -q "\"${ORG_MSP[$org]}\": true"; then
      log "approving $CC_NAME for ${ORG_MSP[$org]}"
      as_admin "$org" lifecycle chaincode approveformyorg "${ORDERER_ARGS[@]}" -C "$CHANNEL" -n "$CC_NAME" -v 1 \
        --package-id "$PKGID" --sequence 1 --waitForEvent 2>>"$RUN_DIR/logs/cli.log"
    fi
  done
  log "committing the $CC_NAME definition (endorsement policy: MAJORITY Endorsement = both hospitals)"
  as_admin org1 lifecycle chaincode commit "${ORDERER_ARGS[@]}" -C "$CHANNEL" -n "$CC_NAME" -v 1 --sequence 1 --waitForEvent \
    --peerAddresses 127.0.0.1:${PEER_PORT[org1]} --tlsRootCertFiles "$(peer_home org1)/tls/ca.crt" \
    --peerAddresses 127.0.0.1:${PEER_PORT[org2]} --tlsRootCertFiles "$(peer_home org2)/tls/ca.crt" 2>>"$RUN_DIR/logs/cli.log"
fi

# Ready when both peers answer a query through the chaincode.
for org in org1 org2; do
  for ((i = 0; ; i++)); do
    as_admin "$org" chaincode query -C "$CHANNEL" -n "$CC_NAME" -c '{"Args":["identity:whoami"]}' >/dev/null 2>>"$RUN_DIR/logs/cli.log" && break
    ((i < 60)) || die "chaincode does not answer on peer0.$org"
    sleep 0.5
  done
done
# Connection settings for FabricLedger (see libs/ledger/README.md).
cat >"$RUN_DIR/connection.json" <<JSON
{
  "channel": "$CHANNEL",
  "chaincode": "$CC_NAME",
  "peers": {
    "org1": { "endpoint": "127.0.0.1:${PEER_PORT[org1]}", "hostOverride": "peer0.org1.example.com", "tlsRootCert": "$(peer_home org1)/tls/ca.crt" },
    "org2": { "endpoint": "127.0.0.1:${PEER_PORT[org2]}", "hostOverride": "peer0.org2.example.com", "tlsRootCert": "$(peer_home org2)/tls/ca.crt" }
  },
  "identities": {
    "org1": { "mspId": "Org1MSP", "dir": "$CRYPTO/peerOrganizations/org1.example.com/users/User1@org1.example.com/msp" },
    "org1Other": { "mspId": "Org1MSP", "dir": "$CRYPTO/peerOrganizations/org1.example.com/users/User2@org1.example.com/msp" },
    "org2": { "mspId": "Org2MSP", "dir": "$CRYPTO/peerOrganizations/org2.example.com/users/User1@org2.example.com/msp" }
  }
}
JSON

# Ready when both gateways can plan an endorsement by both hospitals (discovery via gossip).
"$NODE_BIN" "$NET_DIR/wait-ready.mjs" "$RUN_DIR/connection.json" 120 || die "endorsement by both organisations is not possible yet"
log "network up: channel $CHANNEL, chaincode $CC_NAME; connection settings in $RUN_DIR/connection.json"
