#!/usr/bin/env bash
# Builds etcd, etcdctl and (3.5+) etcdutl for one etcd version from the Go module
# proxy into OUT_DIR as etcd-<v>, etcdctl-<v>, etcdutl-<v>. Each version is built in
# a throwaway wrapper module so the etcd modules' own replace directives (which point
# at sibling directories of the etcd repo) are ignored.
#
# Versions before 3.4 (hack/old-etcd/<version>.mod exists) are not modules: they are
# built from github.com/coreos/etcd@v<version>+incompatible with every dependency
# pinned by that file, plus the few source edits it lists (hack/old-etcd/README.md).
set -euo pipefail -o errtrace

version=${1:?usage: build-etcd.sh <version> <out-dir>}
out_dir=${2:?usage: build-etcd.sh <version> <out-dir>}
goos=${GOOS:-$(go env GOOS)}
goarch=${GOARCH:-$(go env GOARCH)}
pin_file=$(cd "$(dirname "$0")" && pwd)/old-etcd/$version.mod
# A failure anywhere names the version, so one line in a long `make` log is enough.
trap 'echo "build-etcd.sh: building etcd $version ($goos/$goarch) failed: line $LINENO: $BASH_COMMAND" >&2' ERR

# etcd 3.4 predates the /v3 modules; its releases are pseudo-versions of
# go.etcd.io/etcd (the v3.4.x tags are not module versions). The proxy serves only
# some of them; 3.4.25 is the newest found (commit 94593e63d45c, 2023-04-14).
declare -A pseudo_3_4=(
  [3.4.13]=v0.5.0-alpha.5.0.20200910180754-dd1b699fc489
  [3.4.25]=v0.5.0-alpha.5.0.20230414071934-94593e63d45c
)

mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
go mod init etcd-build-wrapper >/dev/null 2>&1
export CGO_ENABLED=0 GOOS="$goos" GOARCH="$goarch" GOFLAGS=-mod=mod

fail() { echo "build-etcd.sh: etcd $version: $*" >&2; exit 1; }

get() { # quiet unless it fails
  go get "$@" >"$work/get.log" 2>&1 || { cat "$work/get.log" >&2; fail "go get $* failed"; }
}

build() { # <package> <binary-name>
  go build -trimpath -ldflags='-s -w' -o "$out_dir/$2.tmp" "$1"
  mv "$out_dir/$2.tmp" "$out_dir/$2"
}

trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; printf '%s' "${s%"${s##*[![:space:]]}"}"; }

# Module cache directory of <module>@<version>, downloaded if needed (the normal
# GOMODCACHE, so CI caches it like any other module).
mod_dir() {
  (cd "$work/dl" && go mod download -json "$1@$2") >"$work/dl.json" 2>&1 ||
    { cat "$work/dl.json" >&2; fail "cannot download $1@$2"; }
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' "$work/dl.json"
}

# build_old <pin-file>: a wrapper module that requires and replaces every pinned
# module at its exact version (a replace, so no dependency's go.mod can move it by
# minimal version selection), with local patched copies of the modules that have edits.
build_old() {
  local pins=$1 line mod ver path old new n=0 dir content
  local -A pin=() subst=() edits=()
  local -a order=()
  while IFS= read -r line || [ -n "$line" ]; do
    line=$(trim "${line%%#*}")
    [ -n "$line" ] || continue
    case "$line" in
      edit\ *)
        # edit <module> <file> | <old text> | <new text>
        read -r _ mod path _ <<<"${line%%|*}"
        IFS='|' read -r _ old new <<<"$line"
        old=$(trim "$old"); new=$(trim "$new")
        [ -n "$mod" ] && [ -n "$path" ] && [ -n "$old" ] || fail "$pins: malformed edit: $line"
        edits[$mod]+="$path|$old|$new"$'\n'
        ;;
      *' => '*)
        # <module> => <replacement module> <version>
        read -r mod _ path ver <<<"$line"
        [ -n "$ver" ] || fail "$pins: malformed replacement: $line"
        subst[$mod]="$path $ver"
        ;;
      *)
        read -r mod ver rest <<<"$line"
        [ -n "$ver" ] && [ -z "$rest" ] || fail "$pins: malformed pin: $line"
        [ -z "${pin[$mod]:-}" ] || fail "$pins: $mod pinned twice"
        pin[$mod]=$ver; order+=("$mod")
        ;;
    esac
  done <"$pins"
  [ "${pin[github.com/coreos/etcd]:-}" = "v$version+incompatible" ] ||
    fail "$pins must pin github.com/coreos/etcd v$version+incompatible (has '${pin[github.com/coreos/etcd]:-}')"

  mkdir -p "$work/dl" "$work/patched"
  (cd "$work/dl" && go mod init dl >/dev/null 2>&1)
  local require="" replace=""
  for mod in "${order[@]}"; do
    ver=${pin[$mod]}
    require+=$'\t'"$mod $ver"$'\n'
    [ -z "${subst[$mod]:-}" ] || fail "$pins: $mod is both pinned and replaced"
    if [ -z "${edits[$mod]:-}" ]; then
      replace+=$'\t'"$mod => $mod $ver"$'\n'
      continue
    fi
    # A writable copy of the module with the edits applied; a module without a
    # go.mod (all of them, in this era) gets a minimal one, which a directory
    # replacement needs.
    n=$((n + 1)); dir=$work/patched/$n
    cp -r "$(mod_dir "$mod" "$ver")" "$dir"
    chmod -R u+w "$dir"
    [ -f "$dir/go.mod" ] || printf 'module %s\n\ngo 1.12\n' "$mod" >"$dir/go.mod"
    while IFS='|' read -r path old new; do
      [ -n "$path" ] || continue
      [ -f "$dir/$path" ] || fail "edit of $mod@$ver: no file $path"
      content=$(cat "$dir/$path"; printf x); content=${content%x}
      # An edit that no longer matches is an error, never a silent no-op.
      [[ $content == *"$old"* ]] || fail "edit of $mod@$ver $path: text not found: $old"
      printf '%s' "${content//"$old"/"$new"}" >"$dir/$path"
    done <<<"${edits[$mod]}"
    replace+=$'\t'"$mod => ./patched/$n"$'\n'
  done
  for mod in "${!edits[@]}"; do
    [ -n "${pin[$mod]:-}" ] || fail "$pins: edit of $mod, which is not pinned"
  done
  for mod in "${!subst[@]}"; do
    # The required version of a substituted module is never fetched; the
    # replacement's is.
    require+=$'\t'"$mod v0.0.0-00010101000000-000000000000"$'\n'
    replace+=$'\t'"$mod => ${subst[$mod]}"$'\n'
  done
  # go 1.12: no graph pruning and pre-1.17 semantics, as these dependencies expect.
  printf 'module etcd-build-wrapper\n\ngo 1.12\n\nrequire (\n%s)\n\nreplace (\n%s)\n' "$require" "$replace" >go.mod

  # Every module a binary is built from must be pinned: go would otherwise resolve an
  # unlisted import to that module's newest version, a different build every month.
  local used
  used=$(go list -deps -f '{{with .Module}}{{.Path}}{{end}}' github.com/coreos/etcd github.com/coreos/etcd/etcdctl 2>"$work/list.log") ||
    { cat "$work/list.log" >&2; fail "go list failed"; }
  for mod in $(sort -u <<<"$used"); do
    [ "$mod" = etcd-build-wrapper ] || [ -n "${pin[$mod]:-}" ] || [ -n "${subst[$mod]:-}" ] ||
      fail "module $mod is used but not pinned in $pins (go picked $(go list -m -f '{{.Version}}' "$mod"))"
  done

  build github.com/coreos/etcd "etcd-$version"
  build github.com/coreos/etcd/etcdctl "etcdctl-$version"
}

if [ -f "$pin_file" ]; then
  build_old "$pin_file"
else case "$version" in
  3.4.*)
    mod=${pseudo_3_4[$version]:-}
    [ -n "$mod" ] || fail "no module version known for etcd $version; add it to pseudo_3_4"
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
esac; fi
echo "built etcd $version ($goos/$goarch) into $out_dir"
