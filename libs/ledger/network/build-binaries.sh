#!/usr/bin/env bash
# Builds (or reuses) the Hyperledger Fabric v3.1.5 binaries the local network needs:
#   peer orderer configtxgen cryptogen osnadmin   (module github.com/hyperledger/fabric)
#   detect build release                           (module github.com/hyperledger/fabric/ccaas_builder)
# Binaries live outside git, in $FABRIC_BIN_CACHE/bin (default ~/.cache/fhir-gateway/fabric-v3.1.5/bin).
#
# Sources, tried in order:
#   1. the cache (a stamp file records the pinned commit);
#   2. `go install` from the Go module proxy at the pseudo-version of the pinned commit;
#   3. a Fabric source tree you already have at the pinned commit (FABRIC_SRC_DIR), or a git
#      directory holding that commit (FABRIC_GIT_DIR), built offline with -mod=vendor.
# Note: the Go module proxy reachable from this project's development machines refuses the
# github.com/hyperledger/* modules (403 "not available"); there, step 2 fails and only step 3 works.
set -euo pipefail

FABRIC_COMMIT=86c1172bec37e6590c6b1ae6f847833df48d65fc
FABRIC_VERSION=3.1.5
FABRIC_PSEUDO=v1.4.0-rc1.0.20260618074816-86c1172bec37
CACHE="${FABRIC_BIN_CACHE:-$HOME/.cache/fhir-gateway/fabric-v${FABRIC_VERSION}}"
BIN="$CACHE/bin"
STAMP="$CACHE/.built-from-${FABRIC_COMMIT}"
TOOLS=(peer orderer configtxgen cryptogen osnadmin)
CCAAS=(detect build release)

have_all() {
  [[ -f "$STAMP" ]] || return 1
  for b in "${TOOLS[@]}" "${CCAAS[@]}"; do [[ -x "$BIN/$b" ]] || return 1; done
}

if have_all; then
  echo "fabric binaries: reusing $BIN (v${FABRIC_VERSION}, ${FABRIC_COMMIT:0:12})"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  cat >&2 <<EOF
ERROR: Go is not installed (or not on PATH), so the Fabric v${FABRIC_VERSION} binaries cannot be built.
Install Go >= 1.26 (https://go.dev/doc/install, or your distribution's golang package), then run
  npm run fabric:build
The binaries are cached in $BIN; set FABRIC_BIN_CACHE to use another folder.
EOF
  exit 2
fi

mkdir -p "$BIN"
start=$(date +%s)
LDFLAGS="-X github.com/hyperledger/fabric/common/metadata.Version=${FABRIC_VERSION} -X github.com/hyperledger/fabric/common/metadata.CommitSHA=${FABRIC_COMMIT:0:7}"
# Two cores: do not let the go command fan out more than the machine has.
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

from_proxy() {
  [[ "${FABRIC_SKIP_PROXY:-0}" == 1 ]] && return 1
  echo "fabric binaries: go install from the module proxy (${FABRIC_PSEUDO})"
  local pkgs=()
  for t in "${TOOLS[@]}"; do pkgs+=("github.com/hyperledger/fabric/cmd/$t@${FABRIC_PSEUDO}"); done
  GOBIN="$BIN" go install -trimpath -ldflags "$LDFLAGS" "${pkgs[@]}" || return 1
  local ccver
  ccver=$(cd /tmp && go list -m -f '{{.Version}}' "github.com/hyperledger/fabric/ccaas_builder@${FABRIC_COMMIT}") || return 1
  for c in "${CCAAS[@]}"; do
    GOBIN="$BIN" go install -trimpath "github.com/hyperledger/fabric/ccaas_builder/cmd/$c@${ccver}" || return 1
  done
}

from_source() {
  local src="${FABRIC_SRC_DIR:-}" tmp=""
  if [[ -z "$src" ]]; then
    local gitdir="${FABRIC_GIT_DIR:-}"
    if [[ -z "$gitdir" ]]; then
      [[ -d "$CACHE/fabric.git" ]] && gitdir="$CACHE/fabric.git"
    fi
    [[ -n "$gitdir" ]] || return 1
    git --git-dir="$gitdir" cat-file -e "${FABRIC_COMMIT}^{commit}" 2>/dev/null || return 1
    tmp="$CACHE/src-${FABRIC_COMMIT:0:12}"
    if [[ ! -f "$tmp/go.mod" ]]; then
      rm -rf "$tmp" && mkdir -p "$tmp"
      git --git-dir="$gitdir" archive "$FABRIC_COMMIT" | tar -x -C "$tmp"
    fi
    src="$tmp"
  fi
  echo "fabric binaries: building from source $src (vendored modules, offline)"
  (cd "$src" && for t in "${TOOLS[@]}"; do
    GOBIN="$BIN" go install -mod=vendor -trimpath -ldflags "$LDFLAGS" "./cmd/$t" || exit 1
  done) || return 1
  # The ccaas builder is its own small module; its two dependencies come from the module proxy.
  (cd "$src/ccaas_builder" && for c in "${CCAAS[@]}"; do
    GOBIN="$BIN" go install -trimpath "./cmd/$c" || exit 1
  done) || return 1
}

if ! from_proxy; then
  echo "fabric binaries: the module proxy did not serve Fabric; trying a local source tree" >&2
  if ! from_source; then
    cat >&2 <<EOF
ERROR: could not build Fabric v${FABRIC_VERSION}.
The Go module proxy refused github.com/hyperledger/fabric@${FABRIC_PSEUDO}, and no local source was found.
Point FABRIC_SRC_DIR at a checkout of hyperledger/fabric at commit ${FABRIC_COMMIT}
(or FABRIC_GIT_DIR at a git directory containing it) and run again.
EOF
    exit 3
  fi
fi

touch "$STAMP"
echo "fabric binaries: built in $(($(date +%s) - start))s into $BIN"
