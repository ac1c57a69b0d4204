#!/usr/bin/env bash
# Build local stand-ins for the base images that docker/Dockerfile,
# docker/nginx.Dockerfile and docker-compose.yml name, for machines where no
# container registry can be reached (nothing can be pulled).
#
#   debian:bookworm-slim       always (runtime stages and the nginx image)
#   postgres:15-bookworm       always (docker-compose.replicated.yml): built from
#                              docker/postgres.Dockerfile on the debian stand-in,
#                              with the official image's interface (--force
#                              replaces this one too)
#   rust:1.95-slim-bookworm    only with --with-rust (or BASE_IMAGES_WITH_RUST=1):
#                              needed only for the multi-stage *source* build path;
#                              CI uses the prebuilt path and does not need it.
#
# An image is built only when `docker image inspect` says it is missing, so a
# real image (pulled where a registry works) is never replaced. Idempotent.
#
# debian:bookworm-slim is made with `debootstrap --variant=minbase bookworm`
# from the Debian mirror apt on this host uses, trimmed like the official slim
# image, and imported with `docker import`. The rootfs tarball is cached in
# $BASE_IMAGE_CACHE (default /var/cache/payments-push/base-images), so a later
# run on the same machine only re-imports it (seconds). A cached rootfs older than
# BASE_IMAGE_MAX_AGE_DAYS (30) is made again; delete the cache to force it.
#
# The rust stand-in is a second minbase rootfs with ca-certificates, gcc and
# libc6-dev, plus the host's rustup toolchain of that version (rustc, cargo,
# std) laid out like the official image (/usr/local/cargo, /usr/local/rustup).
#
# Building a rootfs needs root (debootstrap; installs debootstrap with apt-get
# if missing); images present or a cached rootfs need only docker access.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

CACHE_DIR=${BASE_IMAGE_CACHE:-/var/cache/payments-push/base-images}
SUITE=bookworm
DEBIAN_IMAGE=debian:bookworm-slim
RUST_VERSION=${RUST_STANDIN_VERSION:-1.95}
RUST_IMAGE=rust:${RUST_VERSION}-slim-bookworm
POSTGRES_IMAGE=postgres:15-bookworm
WITH_RUST=${BASE_IMAGES_WITH_RUST:-0}
# a cached rootfs older than this is debootstrapped again (security updates)
MAX_AGE_DAYS=${BASE_IMAGE_MAX_AGE_DAYS:-30}
FORCE=0

for arg in "$@"; do
  case "$arg" in
    --with-rust) WITH_RUST=1 ;;
    --force) FORCE=1 ;;   # rebuild the stand-ins even if the images exist (never touches the cache)
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# The Debian mirror apt on this host uses for $SUITE (deb822 .sources or
# one-line .list), else deb.debian.org. DEBIAN_MIRROR overrides.
detect_mirror() {
  if [[ -n "${DEBIAN_MIRROR:-}" ]]; then echo "$DEBIAN_MIRROR"; return; fi
  local f uri=""
  shopt -s nullglob
  for f in /etc/apt/sources.list.d/*.sources; do
    uri=$(awk -v suite="$SUITE" '
      BEGIN { RS=""; FS="\n" }
      {
        u=""; s=""; t=""
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/)   { u=$i; sub(/^URIs:[ \t]*/, "", u) }
          if ($i ~ /^Suites:/) { s=" " $i " "; sub(/Suites:/, "", s) }
          if ($i ~ /^Types:/)  { t=$i }
          if ($i ~ /^Enabled:[ \t]*no/) { u="" }
        }
        if (u != "" && t ~ /(^|[ \t])deb([ \t]|$)/ && s ~ ("[ \t]" suite "[ \t]")) { split(u, a, /[ \t]+/); print a[1]; exit }
      }' "$f")
    [[ -n "$uri" ]] && break
  done
  if [[ -z "$uri" ]]; then
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [[ -f "$f" ]] || continue
      uri=$(awk -v suite="$SUITE" '
        $1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                      if ($(i+1) == suite) { print $i; exit } }' "$f")
      [[ -n "$uri" ]] && break
    done
  fi
  shopt -u nullglob
  echo "${uri:-http://deb.debian.org/debian}"
}

ensure_debootstrap() {
  command -v debootstrap >/dev/null 2>&1 && return
  log "installing debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}

# Trim a rootfs the way the official slim image is trimmed and configure apt
# like it, so `apt-get install` in a Dockerfile behaves the same.
slim_configure() {
  local root=$1 mirror=$2 security
  # Security suite: same host as the main mirror when it is deb.debian.org
  # style (…/debian -> …/debian-security); else the official one.
  if [[ "$mirror" == */debian || "$mirror" == */debian/ ]]; then
    security="${mirror%/}-security"
  else
    security=http://deb.debian.org/debian-security
  fi
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: ${mirror}
Suites: ${SUITE} ${SUITE}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${security}
Suites: ${SUITE}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  mkdir -p "$root/etc/dpkg/dpkg.cfg.d" "$root/etc/apt/apt.conf.d"
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
  echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
  echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$root/usr/share/man/"* "$root/usr/share/info/"* "$root/usr/share/lintian" \
         "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin "$root/var/cache/apt/archives/"*.deb \
         "$root/var/log/"*.log "$root/var/log/apt/"* "$root/tmp/"* "$root/root/.bash_history" 2>/dev/null || true
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
  : >"$root/etc/machine-id"
  rm -f "$root/etc/hostname" "$root/etc/resolv.conf"   # docker bind-mounts these
  touch "$root/etc/resolv.conf"
}

TMP_DIRS=()
cleanup() { local d; for d in "${TMP_DIRS[@]}"; do rm -rf "$d"; done; }
trap cleanup EXIT

# Debootstrapped rootfs tarball, cached; sets TARBALL.
# $1 = cache name, $2 = extra packages (comma list or empty)
TARBALL=
rootfs_tarball() {
  local name=$1 include=$2 mirror tarball work
  mirror=$(detect_mirror)
  tarball="$CACHE_DIR/${name}.tar"
  TARBALL=$tarball
  if [[ -s "$tarball" ]] && [[ -n $(find "$tarball" -mtime "-${MAX_AGE_DAYS}" 2>/dev/null) ]]; then
    log "using cached rootfs $tarball"
    return
  fi
  if [[ $(id -u) != 0 ]]; then
    log "debootstrap must run as root (no fresh cached rootfs in $CACHE_DIR)"; return 1
  fi
  mkdir -p "$CACHE_DIR"
  ensure_debootstrap
  work=$(mktemp -d "$CACHE_DIR/.rootfs.XXXXXX")
  TMP_DIRS+=("$work")
  log "debootstrap --variant=minbase $SUITE from $mirror${include:+ (+$include)} (takes a minute or two)"
  local args=(--variant=minbase --arch=amd64)
  [[ -n "$include" ]] && args+=("--include=$include")
  if ! debootstrap "${args[@]}" "$SUITE" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 40 "$work/debootstrap.log" >&2
    cat "$work/root/debootstrap/debootstrap.log" 2>/dev/null | tail -n 40 >&2 || true
    log "debootstrap failed"; return 1
  fi
  slim_configure "$work/root" "$mirror"
  tar --numeric-owner --xattrs -C "$work/root" -cf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"
  rm -rf "$work"
  log "cached rootfs $tarball ($(du -h "$tarball" | cut -f1))"
}

build_debian() {
  if [[ $FORCE == 0 ]] && have_image "$DEBIAN_IMAGE"; then
    log "$DEBIAN_IMAGE present, not rebuilding"; return
  fi
  rootfs_tarball "debian-${SUITE}-minbase" ""
  local tarball=$TARBALL
  log "importing $DEBIAN_IMAGE"
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --message "local stand-in for $DEBIAN_IMAGE (debootstrap minbase; .ci/base-images.sh)" \
    "$tarball" "$DEBIAN_IMAGE" >/dev/null
  docker run --rm "$DEBIAN_IMAGE" true
  log "$DEBIAN_IMAGE ready"
}

# rust:<ver>-slim-bookworm: the debian stand-in + gcc/libc6-dev/ca-certificates
# (from debootstrap, no network needed inside docker) + the host's toolchain.
build_rust() {
  if [[ $FORCE == 0 ]] && have_image "$RUST_IMAGE"; then
    log "$RUST_IMAGE present, not rebuilding"; return
  fi
  local toolchain rustup_home=${RUSTUP_HOME:-$HOME/.rustup} full
  toolchain=$(ls -d "$rustup_home/toolchains/${RUST_VERSION}"*-x86_64-unknown-linux-gnu 2>/dev/null | head -n1 || true)
  if [[ -z "$toolchain" ]]; then
    # fall back to the default toolchain if it is the right version
    full=$(rustc --version 2>/dev/null | awk '{print $2}')
    if [[ "$full" == "${RUST_VERSION}"* ]]; then
      toolchain=$(rustc --print sysroot)
    else
      log "no rust ${RUST_VERSION} toolchain on this host (have: ${full:-none}); cannot make $RUST_IMAGE"; return 1
    fi
  fi
  toolchain=$(readlink -f "$toolchain")
  full=$("$toolchain/bin/rustc" --version | awk '{print $2}')
  log "building $RUST_IMAGE from host toolchain $toolchain (rustc $full)"
  local tarball work
  rootfs_tarball "debian-${SUITE}-minbase-gcc" "ca-certificates,gcc,libc6-dev"
  tarball=$TARBALL
  work=$(mktemp -d "$CACHE_DIR/.rust.XXXXXX")
  TMP_DIRS+=("$work")
  docker import "$tarball" payments-push/rust-standin-base:tmp >/dev/null
  mkdir -p "$work/ctx/toolchain"
  # rustc, cargo, std for the host target; no docs, no src
  cp -a "$toolchain/bin" "$toolchain/lib" "$work/ctx/toolchain/"
  rm -rf "$work/ctx/toolchain/lib/rustlib/src" "$work/ctx/toolchain/share"
  local tname="${full}-x86_64-unknown-linux-gnu"
  cat >"$work/ctx/Dockerfile" <<EOF
FROM payments-push/rust-standin-base:tmp
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    RUST_VERSION=${full}
COPY toolchain /usr/local/rustup/toolchains/${tname}
RUN mkdir -p /usr/local/cargo/bin \
 && for b in /usr/local/rustup/toolchains/${tname}/bin/*; do ln -s "\$b" /usr/local/cargo/bin/; done \
 && chmod -R a+w /usr/local/cargo \
 && rustc --version && cargo --version && cc --version | head -n1
CMD ["bash"]
EOF
  DOCKER_BUILDKIT=0 docker build -q -t "$RUST_IMAGE" "$work/ctx" >/dev/null
  docker image rm payments-push/rust-standin-base:tmp >/dev/null
  docker run --rm "$RUST_IMAGE" cargo --version
  rm -rf "$work"
  log "$RUST_IMAGE ready"
}

# postgres:15-bookworm: Debian's postgresql-15 on the debian image, with
# the official image's interface (docker/postgres.Dockerfile).
# A stand-in older than its label's revision 2 lacks POSTGRES_PASSWORD_FILE,
# which the replicated stack uses: it is made again. The official image
# (which sets PG_MAJOR, as the stand-in never did) is never replaced.
stale_postgres_standin() {
  local env revision
  env=$(docker image inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$POSTGRES_IMAGE") || return 1
  grep -q '^PG_MAJOR=' <<<"$env" && return 1
  revision=$(docker image inspect -f '{{index .Config.Labels "org.payments-push.postgres-standin"}}' "$POSTGRES_IMAGE" 2>/dev/null)
  [[ ${revision:-0} != 2 ]]
}
build_postgres() {
  if [[ $FORCE == 0 ]] && have_image "$POSTGRES_IMAGE"; then
    if stale_postgres_standin; then
      log "$POSTGRES_IMAGE is an older stand-in (no POSTGRES_PASSWORD_FILE): rebuilding"
    else
      log "$POSTGRES_IMAGE present, not rebuilding"; return
    fi
  fi
  log "building $POSTGRES_IMAGE from docker/postgres.Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -f "$ROOT/docker/postgres.Dockerfile" -t "$POSTGRES_IMAGE" "$ROOT/docker" >/dev/null
  docker run --rm --entrypoint postgres "$POSTGRES_IMAGE" --version
  log "$POSTGRES_IMAGE ready"
}

command -v docker >/dev/null || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "docker engine not reachable"

build_debian
build_postgres
if [[ $WITH_RUST == 1 ]]; then
  build_rust
fi
