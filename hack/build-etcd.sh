#!/usr/bin/env bash
# Builds etcd, etcdctl and (3.5+) etcdutl for one etcd version from the Go module
# proxy into OUT_DIR as etcd-<v>, etcdctl-<v>, etcdutl-<v>. Each version is built in
# a throwaway wrapper module so the etcd modules' own replace directives (which point
# at sibling directories of the etcd repo) are ignored.
set -euo pipefail

version=${1:?usage: build-etcd.sh <version> <out-dir>}
out_dir=${2:?usage: build-etcd.sh <version> <out-dir>}
goos=${GOOS:-$(go env GOOS)}
goarch=${GOARCH:-$(go env GOARCH)}

# etcd 3.4 predates the /v3 modules; 3.4.13 is this pseudo-version of go.etcd.io/etcd.
declare -A pseudo_3_4=(
  [3.4.13]=v0.5.0-alpha.5.0.20200910180754-dd1b699fc489
)

mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
go mod init etcd-build-wrapper >/dev/null 2>&1
export CGO_ENABLED=0 GOOS="$goos" GOARCH="$goarch" GOFLAGS=-mod=mod

get() { # quiet unless it fails
  go get "$@" >"$work/get.log" 2>&1 || { cat "$work/get.log" >&2; exit 1; }
}

build() { # <package> <binary-name>
  go build -trimpath -ldflags='-s -w' -o "$out_dir/$2.tmp" "$1"
  mv "$out_dir/$2.tmp" "$out_dir/$2"
}

case "$version" in
  3.4.*)
    mod=${pseudo_3_4[$version]:-}
    [ -n "$mod" ] || { echo "build-etcd.sh: no module version known for etcd $version; add it to pseudo_3_4" >&2; exit 2; }
    get "go.etcd.io/etcd@$mod"
    build go.etcd.io/etcd "etcd-$version"
    build go.etcd.io/etcd/etcdctl "etcdctl-$version"
    ;;
  *)
    get "go.etcd.io/etcd/server/v3@v$version" "go.etcd.io/etcd/etcdctl/v3@v$version" "go.etcd.io/etcd/etcdutl/v3@v$version"
    build go.etcd.io/etcd/server/v3 "etcd-$version"
    build go.etcd.io/etcd/etcdctl/v3 "etcdctl-$version"
    build go.etcd.io/etcd/etcdutl/v3 "etcdutl-$version"
    ;;
esac
echo "built etcd $version ($goos/$goarch) into $out_dir"
