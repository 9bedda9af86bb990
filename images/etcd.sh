#!/bin/sh
# /usr/local/bin/etcd: etcd-$TARGET_VERSION, the version migrate walks the data dir to
# (the image's TARGET_VERSION, the newest bundled, unless the environment says
# otherwise). The Kubernetes GCE manifest runs migrate-if-needed.sh and then
# `exec /usr/local/bin/etcd ...` with DO_NOT_MOVE_BINARIES=true: a plain symlink to the
# newest etcd would serve a data dir just rolled back to an older TARGET_VERSION with
# the newer etcd. That manifest also execs etcd when the migration failed, so this
# refuses (exit 2) to start etcd on a data dir whose version.txt records another
# version than the target: the container restarts and the migration is retried.
# migrate's own exec (the image's entrypoint) runs etcd-<v> directly, not this.
v=${TARGET_VERSION:-@NEWEST@}
bin=/usr/local/bin/etcd-$v
if [ ! -x "$bin" ]; then
  # Any patch of a bundled minor runs that minor's newest bundled release, as migrate
  # does (its version.txt records that release).
  minor=${v%.*} best= bestp=-1 oldifs=$IFS
  IFS=', '
  for b in ${BUNDLED_VERSIONS:-@BUNDLED@}; do
    case $b in
      "$minor".*) p=${b##*.}; if [ "$p" -gt "$bestp" ] 2>/dev/null; then best=$b bestp=$p; fi ;;
    esac
  done
  IFS=$oldifs
  if [ -n "$best" ] && [ -x "/usr/local/bin/etcd-$best" ]; then
    v=$best bin=/usr/local/bin/etcd-$best
  fi
fi
if [ ! -x "$bin" ]; then
  echo "etcd: TARGET_VERSION=$v is not bundled in this image ($bin missing); bundled: ${BUNDLED_VERSIONS:-@BUNDLED@}" >&2
  exit 2
fi
# The data dir etcd will serve: --data-dir / --data-dir= (the last one wins, as for etcd).
dir=
take=
for a in "$@"; do
  if [ -n "$take" ]; then dir=$a; take=; continue; fi
  case $a in
    --data-dir=*|-data-dir=*) dir=${a#*=} ;;
    --data-dir|-data-dir) take=1 ;;
  esac
done
if [ -n "$dir" ] && [ -f "$dir/version.txt" ]; then
  have=
  IFS= read -r have <"$dir/version.txt" || :
  want=$v/${TARGET_STORAGE:-etcd3}
  if [ "$have" != "$want" ]; then
    echo "etcd: $dir/version.txt records $have, not the target $want: the migration did not finish (its log is above); refusing to start etcd-$v on it. Fix what migrate reported, or set TARGET_VERSION to $have; restarting the container retries the migration." >&2
    exit 2
  fi
fi
exec "$bin" "$@"
