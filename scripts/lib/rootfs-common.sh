# Helpers for scripts/build-rootfs (sourced).

# Packages added to debootstrap's minbase: what jobs, copy in/out and operators use.
BASE_PACKAGES=bash,coreutils,tar,gzip,procps,iproute2,iputils-ping,netbase,ca-certificates,curl,less,findutils,util-linux,locales

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "build-rootfs: missing $1 (apt-get install -y $2)" >&2; exit 1; }
}

# First URI of the main Debian source (deb822 format first, then one-line format).
debian_mirror() {
  local m=""
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    m=$(awk '/^URIs:/ && !/security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [[ -z $m && -f /etc/apt/sources.list ]]; then
    m=$(awk '/^deb / && !/security/ {print $2; exit}' /etc/apt/sources.list)
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

build_base_rootfs() {
  local root=$1 mirror
  need debootstrap debootstrap
  mirror=$(debian_mirror)
  echo "build-rootfs: debootstrap minbase bookworm from $mirror (about 30 s)"
  # debootstrap logs each package as it goes: that is the progress output.
  debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$root" "$mirror"
  # Drop caches: .debs, apt lists, logs.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
         "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/var/log/apt/*
  mkdir -p "$root/home"
  # Leave no host-specific resolver or hostname; Warden writes them per container.
  : > "$root/etc/hostname"
}

# Copy a host binary and every library ldd lists for it into the rootfs, at the same paths.
copy_with_libs() {
  local root=$1 bin=$2 lib
  mkdir -p "$root$(dirname "$bin")"
  cp -L "$bin" "$root$bin"
  while read -r lib; do
    [[ -n $lib && -e $lib ]] || continue
    mkdir -p "$root$(dirname "$lib")"
    [[ -e $root$lib ]] || cp -L "$lib" "$root$lib"
  done < <(ldd "$bin" 2>/dev/null | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }')
}

build_test_rootfs() {
  local root=$1
  need busybox busybox-static
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,home,run,var/tmp,lib,lib64}
  chmod 1777 "$root/tmp" "$root/var/tmp"
  cp -L "$(command -v busybox)" "$root/bin/busybox"
  # busybox applets as symlinks, made in one process (a fork per applet costs seconds);
  # host tools copied below replace a few of them.
  "$root/bin/busybox" --list-full | (cd "$root" && perl -nle 'symlink("/bin/busybox", $_) unless -e $_ || -l $_')
  # Real bash, GNU tar (copy in/out semantics) and util-linux tools, with their libraries.
  local tool
  for tool in /bin/bash /bin/tar /usr/bin/setpriv /usr/bin/prlimit; do
    rm -f "$root$tool"
    copy_with_libs "$root" "$tool"
  done
  ln -sf bash "$root/bin/sh"
  cat > "$root/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PW
  cat > "$root/etc/group" <<'GR'
root:x:0:
nogroup:x:65534:
GR
  : > "$root/etc/hostname"
  : > "$root/etc/hosts"
  : > "$root/etc/resolv.conf"
}
