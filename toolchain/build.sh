#!/usr/bin/env bash
# Builds the real-engine toolchain from the Go module proxy (`make toolchain`).
#
# Each piece lands in $CACHE/<name>-<version>/bin, outside the checkout, so a fresh clone on the
# same machine reuses it. A piece is rebuilt only when its directory lacks the .built stamp.
# Nothing here downloads a release binary: every byte is compiled from modules the proxy serves.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$HERE/versions.env"
CACHE=${MLOPS_TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlops-platform}
PYTHON=${PYTHON:-python3}
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off
mkdir -p "$CACHE/src"

log() { printf 'toolchain: %s\n' "$*" >&2; }

# piece NAME VERSION BUILDER: runs BUILDER with $OUT (a fresh bin directory) unless already built.
piece() {
  local name=$1 version=$2 builder=$3
  local dest="$CACHE/$name-$version"
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then
    return
  fi
  if [ -f "$dest/.built" ]; then
    log "$name $version: cached in $dest"
    return
  fi
  log "$name $version: building"
  local started=$SECONDS
  rm -rf "$dest.partial"
  mkdir -p "$dest.partial/bin"
  OUT="$dest.partial/bin" "$builder" "$version"
  "$PYTHON" "$HERE/licences.py" "$dest.partial/bin" >"$dest.partial/licences.txt"
  rm -rf "$dest"
  mv "$dest.partial" "$dest"
  echo "$((SECONDS - started))" >"$dest/.built"
  log "$name $version: built in $((SECONDS - started)) s ($(du -sh "$dest/bin" | cut -f1))"
}

# wrapper DIR MODULE@VERSION...: a throwaway main module requiring the given modules, so that a
# module whose own go.mod replaces siblings by relative paths can be built from the proxy.
wrapper() {
  local dir=$1
  shift
  rm -rf "$dir"
  mkdir -p "$dir"
  printf 'module local.invalid/toolchain\n\ngo 1.26\n' >"$dir/go.mod"
  (cd "$dir" && for m in "$@"; do go mod edit -require="$m"; done)
}

# module_field MODULE@VERSION FIELD: a field of `go mod download -json` (Dir: the unpacked module; GoMod: its go.mod).
module_field() { go mod download -json "$1" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"; }

# non_relative_replaces MODULE@VERSION: the replace directives of that go.mod that point at
# another module version (relative ones only make sense inside the upstream repository).
non_relative_replaces() {
  local gomod
  gomod=$(module_field "$1" GoMod)
  go mod edit -json "$gomod" | "$PYTHON" -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    new = r["New"]
    if new.get("Version"):
        old = r["Old"]["Path"] + ("@" + r["Old"]["Version"] if r["Old"].get("Version") else "")
        print(old + "=" + new["Path"] + "@" + new["Version"])
'
}


build_pulumi() {
  local v=$1 dir="$CACHE/src/pulumi"
  wrapper "$dir" "github.com/pulumi/pulumi/pkg/v3@$v" "github.com/pulumi/pulumi/sdk/v3@$v"
  local r
  for r in $(non_relative_replaces "github.com/pulumi/pulumi/pkg/v3@$v"); do
    (cd "$dir" && go mod edit -replace="$r")
  done
  (cd "$dir" && go build -trimpath -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$v" \
    -o "$OUT/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
  # The dynamic-provider launcher ships in the SDK module (it is a script, not a build product).
  install -m 0755 "$(module_field "github.com/pulumi/pulumi/sdk/v3@$v" Dir)/python/dist/pulumi-resource-pulumi-python" "$OUT/"
}

build_kubernetes_provider() {
  local v=$1 dir="$CACHE/src/pulumi-kubernetes"
  local mod="github.com/pulumi/pulumi-kubernetes/provider/v4@$PULUMI_KUBERNETES_PROVIDER_MODULE_VERSION"
  wrapper "$dir" "$mod" "github.com/pulumi/pulumi-kubernetes/sdk/v4@$v"
  # The command embeds schema files that its own generate.go writes; they are not in the module zip.
  local src
  src="$(module_field "$mod" Dir)/cmd/pulumi-resource-kubernetes"
  mkdir -p "$dir/cmd"
  cp "$src"/main.go "$src"/generate.go "$src"/schema.json "$src"/terraform-mapping.json "$dir/cmd/"
  chmod u+w "$dir"/cmd/*
  (cd "$dir/cmd" && VERSION="${v#v}" go run generate.go &&
    go build -trimpath -ldflags "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=${v#v}" \
      -o "$OUT/pulumi-resource-kubernetes" .)
}

build_random_provider() {
  (cd "$HERE/random-provider" && go build -trimpath -ldflags "-s -w" -o "$OUT/pulumi-resource-random" .)
}

build_etcd() {
  local v=$1 dir="$CACHE/src/etcd"
  wrapper "$dir" "go.etcd.io/etcd/server/v3@$v" "go.etcd.io/etcd/api/v3@$v" "go.etcd.io/etcd/client/pkg/v3@$v" \
    "go.etcd.io/etcd/client/v3@$v" "go.etcd.io/etcd/pkg/v3@$v"
  (cd "$dir" && go build -trimpath -ldflags "-s -w" -o "$OUT/etcd" go.etcd.io/etcd/server/v3)
}

# kubernetes_wrapper DIR VERSION: a wrapper requiring k8s.io/kubernetes and, in place of its ./staging replaces, the
# published v0.x of each staging module it requires.
kubernetes_wrapper() {
  local dir=$1 v=$2
  local mods=("k8s.io/kubernetes@$v") line
  while read -r line; do
    mods+=("$line@v0.${v#v1.}")
  done < <(go mod edit -json "$(module_field "k8s.io/kubernetes@$v" GoMod)" |
    "$PYTHON" -c '
import json, sys
mod = json.load(sys.stdin)
required = {r["Path"] for r in mod.get("Require") or []}
for r in mod.get("Replace") or []:
    # Staging modules it requires; the sample-* ones are only replaced (and not served).
    if r["New"]["Path"].startswith("./staging/") and r["Old"]["Path"] in required:
        print(r["Old"]["Path"])
')
  wrapper "$dir" "${mods[@]}"
}

kubernetes_ldflags() {
  local v=$1 minor=${1#v1.}
  minor=${minor%%.*}
  echo "-s -w -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1" \
    "-X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
}

build_kubernetes() {
  local v=$1 dir="$CACHE/src/kubernetes" cmd
  kubernetes_wrapper "$dir" "$v"
  for cmd in kube-apiserver kube-controller-manager kube-scheduler; do
    (cd "$dir" && go build -trimpath -ldflags "$(kubernetes_ldflags "$v")" -o "$OUT/$cmd" "k8s.io/kubernetes/cmd/$cmd")
  done
}

# kubectl of the control plane's version: what `make local-up`'s hints and the env file use (a machine may have none,
# or another build of another version).
build_kubectl() {
  local v=$1 dir="$CACHE/src/kubectl"
  kubernetes_wrapper "$dir" "$v"
  (cd "$dir" && go build -trimpath -ldflags "$(kubernetes_ldflags "$v")" -o "$OUT/kubectl" k8s.io/kubernetes/cmd/kubectl)
}

build_kwok() {
  local v=$1 dir="$CACHE/src/kwok"
  wrapper "$dir" "sigs.k8s.io/kwok@$v"
  (cd "$dir" && go build -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$v" -o "$OUT/kwok" sigs.k8s.io/kwok/cmd/kwok)
}

build_oauth2_proxy() {
  local v=$1 dir="$CACHE/src/oauth2-proxy"
  wrapper "$dir" "github.com/oauth2-proxy/oauth2-proxy/v7@$v"
  (cd "$dir" && go build -trimpath -ldflags "-s -w -X github.com/oauth2-proxy/oauth2-proxy/v7/pkg/version.VERSION=$v" \
    -o "$OUT/oauth2-proxy" github.com/oauth2-proxy/oauth2-proxy/v7)
}

ONLY="$*"
started=$SECONDS
random_version="standin-$(cd "$HERE/random-provider" && LC_ALL=C cat go.mod go.sum main.go | sha256sum | cut -c1-12)"
piece pulumi "$PULUMI_VERSION" build_pulumi
piece pulumi-resource-kubernetes "$PULUMI_KUBERNETES_VERSION" build_kubernetes_provider
piece pulumi-resource-random "$random_version" build_random_provider
piece etcd "$ETCD_VERSION" build_etcd
piece kubernetes "$KUBERNETES_VERSION" build_kubernetes
piece kubectl "$KUBERNETES_VERSION" build_kubectl
piece kwok "$KWOK_VERSION" build_kwok
piece oauth2-proxy "$OAUTH2_PROXY_VERSION" build_oauth2_proxy
# What the engine lane puts first on PATH, for tests and `make local-up`.
mkdir -p "$HERE/../build"
{
  for p in "pulumi-$PULUMI_VERSION" "pulumi-resource-kubernetes-$PULUMI_KUBERNETES_VERSION" "pulumi-resource-random-$random_version" \
    "etcd-$ETCD_VERSION" "kubernetes-$KUBERNETES_VERSION" "kubectl-$KUBERNETES_VERSION" "kwok-$KWOK_VERSION" \
    "oauth2-proxy-$OAUTH2_PROXY_VERSION"; do
    printf '%s\n' "$CACHE/$p/bin"
  done
} >"$HERE/../build/toolchain.path"
log "done in $((SECONDS - started)) s; cache: $CACHE ($(du -sh "$CACHE" | cut -f1) with sources)"
