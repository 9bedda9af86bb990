#!/usr/bin/env bash
# Builds, and pushes, the etcd-migrate image from prebuilt static binaries with docker
# or buildah, whichever works here. `make image`, `make push` and the image test
# (test/image) call it; docs/development.md, "Building the image", describes the targets.
#
#   hack/image.sh tool             print the image tool that would be used (exit 3: none)
#   hack/image.sh context DIR      stage the build context (bin/, rootfs/, shell-package) into DIR
#   hack/image.sh build            stage the context and build IMAGE for ARCH
#   hack/image.sh push             push IMAGE
#   hack/image.sh push-manifest    push MANIFEST: a manifest list of IMAGE_ARCHS' images
#
# Environment:
#   IMAGE             image reference to build or push (build, push)
#   ARCH              target architecture: amd64, arm64, ppc64le, s390x (default: the host's)
#   BIN_DIR           where `make build etcd-binaries ARCH=$ARCH` put the binaries
#   BUNDLED_VERSIONS  the bundled etcd versions, comma or space separated; the last one
#                     is the default TARGET_VERSION
#   BASE_IMAGE        base image; unset: gcr.io/distroless/static-debian12, and `scratch`
#                     when that cannot be pulled (offline machines; a warning says so)
#   CONTEXT_DIR       where `build` stages the context (default: a temp dir, removed)
#   IMAGE_VERSION, VCS_REF  the image's version and revision labels
#   SHELL_DEB         the bash-static .deb whose static bash becomes the image's /bin/sh
#                     (unset: `apt-get download bash-static:<arch>`, cached in DEB_DIR)
#   DEB_DIR           download cache for it (default: _output/debs)
#   IMAGE_TOOL        docker or buildah (default: docker if its engine answers, else buildah)
#   BUILDAH_ROOT, BUILDAH_RUNROOT  buildah storage (default: buildah's own)
#   BUILDAH_STORAGE_DRIVER         default vfs: works without overlay or fuse support
#   BUILDAH_ISOLATION              default chroot: works without user namespaces
#   MANIFEST, IMAGE_ARCHS          push-manifest: the list's name and its per-arch
#                                  images, IMAGE_ARCHS="amd64=<ref> arm64=<ref> ..."
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
default_base=gcr.io/distroless/static-debian12

die() { echo "image.sh: $*" >&2; exit 2; }

tool() {
  case "${IMAGE_TOOL:-}" in
    docker|buildah) echo "$IMAGE_TOOL"; return ;;
    "") ;;
    *) die "IMAGE_TOOL=$IMAGE_TOOL: use docker or buildah" ;;
  esac
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    echo docker
  elif command -v buildah >/dev/null 2>&1; then
    echo buildah
  else
    echo "image.sh: neither a docker engine nor buildah is available (Debian: apt-get install -y buildah)" >&2
    return 3
  fi
}

buildah_cmd() {
  local g=(buildah --storage-driver "${BUILDAH_STORAGE_DRIVER:-vfs}")
  [ -n "${BUILDAH_ROOT:-}" ] && g+=(--root "$BUILDAH_ROOT")
  [ -n "${BUILDAH_RUNROOT:-}" ] && g+=(--runroot "$BUILDAH_RUNROOT")
  "${g[@]}" "$@"
}

versions() { echo "${BUNDLED_VERSIONS:?BUNDLED_VERSIONS is not set}" | tr ',' ' ' | xargs -n1; }

# check_binary FILE: a static linux/$ARCH Go binary.
check_binary() {
  local f=$1 info
  [ -x "$f" ] || die "$f is missing or not executable: run make build etcd-binaries ARCH=$ARCH"
  info=$(go version -m "$f" 2>/dev/null) || die "$f is not a Go binary"
  grep -q "GOOS=linux$" <<<"$info" || die "$f is not built for linux"
  grep -q "GOARCH=$ARCH$" <<<"$info" || die "$f is not built for $ARCH ($(grep -o 'GOARCH=.*' <<<"$info")): use the bin dir of make etcd-binaries ARCH=$ARCH"
  grep -q "CGO_ENABLED=0$" <<<"$info" || die "$f is built with cgo: it would not run on a distroless or scratch base"
}

# link_or_copy SRC DST: a hard link when SRC and DST share a filesystem; a symbolic
# link SRC is followed (a BIN_DIR of links must not put links into the image).
link_or_copy() { ln -fL "$1" "$2" 2>/dev/null || cp -fL "$1" "$2"; }

# deb_arch GOARCH: Debian's name for it.
deb_arch() {
  case "$1" in
    amd64|arm64|s390x) echo "$1" ;;
    ppc64le) echo ppc64el ;;
    *) die "no Debian architecture for ARCH=$1" ;;
  esac
}

# shell_deb: the bash-static .deb for $ARCH: SHELL_DEB if set, else the one cached in
# DEB_DIR, else `apt-get download` into DEB_DIR (apt checks it against the signed
# archive index, which a plain download would not).
shell_deb() {
  local a cache f
  if [ -n "${SHELL_DEB:-}" ]; then
    [ -f "$SHELL_DEB" ] || die "SHELL_DEB=$SHELL_DEB: no such file"
    echo "$SHELL_DEB"
    return
  fi
  a=$(deb_arch "$ARCH")
  cache=${DEB_DIR:-$repo/_output/debs}
  mkdir -p "$cache"
  f=$(ls "$cache"/bash-static_*_"$a".deb 2>/dev/null | tail -n1)
  if [ -z "$f" ]; then
    command -v apt-get >/dev/null 2>&1 || die "the image's /bin/sh comes from Debian's bash-static package and apt-get is not here: set SHELL_DEB to a bash-static_*_$a.deb"
    # A fresh machine may have no package lists yet: update them once and retry.
    (cd "$cache" && apt-get download "bash-static:$a" >&2) ||
      { [ "$(id -u)" = 0 ] && apt-get update -qq >&2 && (cd "$cache" && apt-get download "bash-static:$a" >&2); } ||
      die "cannot download bash-static:$a with apt-get: run apt-get update (for another architecture first: dpkg --add-architecture $a), or set SHELL_DEB to a bash-static_*_$a.deb"
    f=$(ls "$cache"/bash-static_*_"$a".deb | tail -n1)
  fi
  echo "$f"
}

# stage_shell ROOTFS: /bin/sh = the static bash of Debian's bash-static package (what
# the Kubernetes etcd image copied in as /bin/sh), for the Kubernetes GCE manifest's
# `/bin/sh -c` command and liveness probe. Only that one file of the package.
stage_shell() {
  local rootfs=$1 deb
  deb=$(shell_deb)
  command -v dpkg-deb >/dev/null 2>&1 || die "dpkg-deb is needed to unpack $deb (Debian: apt-get install dpkg)"
  [ "$(dpkg-deb -f "$deb" Package)" = bash-static ] || die "$deb is not the bash-static package"
  [ "$(dpkg-deb -f "$deb" Architecture)" = "$(deb_arch "$ARCH")" ] ||
    die "$deb is for $(dpkg-deb -f "$deb" Architecture), not $(deb_arch "$ARCH") (ARCH=$ARCH)"
  mkdir -p "$rootfs/bin"
  dpkg-deb --fsys-tarfile "$deb" | tar -xO ./bin/bash-static >"$rootfs/bin/sh" ||
    die "cannot extract ./bin/bash-static from $deb"
  chmod 0755 "$rootfs/bin" "$rootfs/bin/sh"
  # For the image's io.etcd-migrate.shell label.
  echo "bash-static $(dpkg-deb -f "$deb" Version) $(dpkg-deb -f "$deb" Architecture)" >"$rootfs/../shell-package"
}

context() {
  local dir=${1:?usage: image.sh context DIR}
  local bin_dir=${BIN_DIR:?BIN_DIR is not set} newest="" v
  ARCH=${ARCH:-$(go env GOHOSTARCH)}
  rm -rf "$dir/bin" "$dir/rootfs"
  mkdir -p "$dir/bin" "$dir/rootfs/tmp" "$dir/rootfs/var/etcd" "$dir/rootfs/etc"
  check_binary "$bin_dir/migrate"
  link_or_copy "$bin_dir/migrate" "$dir/bin/migrate"
  for v in $(versions); do
    for b in etcd etcdctl etcdutl; do
      if [ "$b" = etcdutl ] && [[ $v =~ ^(2\.|3\.[0-4]\.) ]]; then
        continue # etcdutl starts with 3.5
      fi
      check_binary "$bin_dir/$b-$v"
      link_or_copy "$bin_dir/$b-$v" "$dir/bin/$b-$v"
    done
    newest=$v
  done
  for b in etcdctl etcdutl; do
    [ -e "$dir/bin/$b-$newest" ] && ln -sfn "$b-$newest" "$dir/bin/$b"
  done
  # etcd is migrate run as etcd (a link: the binary dispatches on its name): kubeadm's
  # `etcd …`, the GCE manifest's `exec /usr/local/bin/etcd …` and `docker run IMAGE
  # etcd …` migrate the data dir etcd's own flags name, then exec
  # etcd-$TARGET_VERSION. For the GCE manifest (docs/image-and-kubernetes.md,
  # "Kubernetes static pod"): migrate-if-needed.sh migrates without exec, /bin/sh
  # runs the manifest's command, /var/log takes its redirections.
  ln -sfn migrate "$dir/bin/etcd"
  cp "$repo/images/migrate-if-needed.sh" "$dir/bin/migrate-if-needed.sh"
  chmod 0755 "$dir/bin/migrate-if-needed.sh"
  stage_shell "$dir/rootfs"
  mkdir -p "$dir/rootfs/var/log"
  # Any UID may create files in /tmp, beside the data dir (lock file, backup) and in
  # /var/log (the manifest's 1>>/var/log/etcd.log when no file is mounted there).
  chmod 1777 "$dir/rootfs/tmp" "$dir/rootfs/var/etcd" "$dir/rootfs/var/log"
  chmod 0755 "$dir/rootfs/etc" "$dir/rootfs/var"
  cat >"$dir/rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat >"$dir/rootfs/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
EOF
  echo "hosts: files dns" >"$dir/rootfs/etc/nsswitch.conf"
  chmod 0644 "$dir/rootfs/etc/passwd" "$dir/rootfs/etc/group" "$dir/rootfs/etc/nsswitch.conf"
}

# base_image TOOL: BASE_IMAGE, or the default when it can be had, else scratch.
base_image() {
  if [ -n "${BASE_IMAGE:-}" ]; then
    echo "$BASE_IMAGE"
    return
  fi
  case "$1" in
    docker)
      if docker image inspect "$default_base" >/dev/null 2>&1 || docker pull --platform "linux/$ARCH" "$default_base" >/dev/null 2>&1; then
        echo "$default_base"; return
      fi ;;
    buildah)
      if buildah_cmd inspect --type image "$default_base" >/dev/null 2>&1 || buildah_cmd pull --arch "$ARCH" --os linux "$default_base" >/dev/null 2>&1; then
        echo "$default_base"; return
      fi ;;
  esac
  echo "image.sh: WARNING: cannot pull $default_base (no registry access?); building FROM scratch (set BASE_IMAGE to choose)" >&2
  echo scratch
}

build() {
  local t base ctx newest list
  : "${IMAGE:?IMAGE is not set}"
  ARCH=${ARCH:-$(go env GOHOSTARCH)}
  t=$(tool) || exit 3
  ctx=${CONTEXT_DIR:-}
  if [ -z "$ctx" ]; then
    tmp_ctx=$(mktemp -d)
    trap 'rm -rf "$tmp_ctx"' EXIT
    ctx=$tmp_ctx
  fi
  context "$ctx"
  newest=$(versions | tail -n1)
  list=$(versions | paste -sd, -)
  base=$(base_image "$t")
  local args=(-f "$repo/images/Dockerfile"
    --build-arg "BASE_IMAGE=$base"
    --build-arg "BUNDLED_VERSIONS=$list"
    --build-arg "TARGET_VERSION=$newest"
    --build-arg "IMAGE_VERSION=${IMAGE_VERSION:-$newest}"
    --build-arg "SHELL_PACKAGE=$(cat "$ctx/shell-package")"
    --build-arg "VCS_REF=${VCS_REF:-$(git describe --always --dirty 2>/dev/null || echo unknown)}"
    -t "$IMAGE")
  echo "image.sh: building $IMAGE (linux/$ARCH, FROM $base) with $t"
  case "$t" in
    docker)
      if [ "$ARCH" = "$(go env GOHOSTARCH)" ]; then
        docker build "${args[@]}" "$ctx"
      else
        docker buildx build --load --platform "linux/$ARCH" "${args[@]}" "$ctx"
      fi ;;
    buildah)
      buildah_cmd bud --isolation "${BUILDAH_ISOLATION:-chroot}" --os linux --arch "$ARCH" "${args[@]}" "$ctx" ;;
  esac
}

push() {
  : "${IMAGE:?IMAGE is not set}"
  local t
  t=$(tool) || exit 3
  case "$t" in
    docker) docker push "$IMAGE" ;;
    buildah) buildah_cmd push "$IMAGE" "docker://$IMAGE" ;;
  esac
}

push_manifest() {
  : "${MANIFEST:?MANIFEST is not set}" "${IMAGE_ARCHS:?IMAGE_ARCHS is not set}"
  local t pair refs=()
  t=$(tool) || exit 3
  for pair in $IMAGE_ARCHS; do refs+=("${pair#*=}"); done
  case "$t" in
    docker)
      docker manifest rm "$MANIFEST" >/dev/null 2>&1 || true
      docker manifest create "$MANIFEST" "${refs[@]}"
      for pair in $IMAGE_ARCHS; do
        docker manifest annotate --os linux --arch "${pair%%=*}" "$MANIFEST" "${pair#*=}"
      done
      docker manifest push "$MANIFEST" ;;
    buildah)
      buildah_cmd manifest rm "$MANIFEST" >/dev/null 2>&1 || true
      buildah_cmd manifest create "$MANIFEST"
      for pair in $IMAGE_ARCHS; do
        buildah_cmd manifest add --os linux --arch "${pair%%=*}" "$MANIFEST" "docker://${pair#*=}"
      done
      buildah_cmd manifest push --all "$MANIFEST" "docker://$MANIFEST" ;;
  esac
}

case "${1:-}" in
  tool) tool ;;
  context) context "${2:-}" ;;
  build) build ;;
  push) push ;;
  push-manifest) push_manifest ;;
  *) die "usage: image.sh tool|context DIR|build|push|push-manifest" ;;
esac
