#!/usr/bin/env bash
# Install the cross-compilation toolchain used by CI to build the pyaket launcher for
# foreign targets (cargo-zigbuild + Debian's rustc-web, qemu-user, wine64).
#
#   usage (as root):  bash .ci/setup-cross.sh [CROSS_DIR]
#                     CROSS_DIR defaults to $CROSS_DIR, else $HOME/.cache/pyaket-cross
#   afterwards:       source "$CROSS_DIR/env.sh"
#
# Idempotent: every step is skipped when its result is already there.
# Optional env:
#   PYTHON=python3            interpreter whose pip gets ziglang + cargo-zigbuild
#   CROSS_EXTRA_APT="..."     more apt packages (e.g. libc6-armhf-cross libc6-riscv64-cross)
#   CROSS_PY_ARM64=1          also unpack Debian's arm64 CPython into $CROSS_DIR/py-arm64
#   CROSS_SKIP_WINE=1         skip wine64 and the Wine prefix
#   CROSS_SKIP_RCODESIGN=1    do not install rcodesign (macOS signing) into the plugin's cache
#   CROSS_APPLE_TOOLCHAIN=stable   rustup toolchain that gets the Apple targets' std
#
# What env.sh gives (see the end of this file for the full list):
#   PATH        $CROSS_DIR/bin first: cargo -> /usr/bin/cargo, rustc -> /usr/bin/rustc
#               (Debian's rustc-web, whose std for amd64+arm64 comes from Debian),
#               zig -> python -m ziglang; then the pip scripts dir (cargo-zigbuild)
#   RUSTC=/usr/bin/rustc, WINEPREFIX, WINEDEBUG=-all
#   PYAKET_CROSS_PREBUILT_STD    targets with a prebuilt std (no build-std needed)
#   PYAKET_CROSS_RUSTFLAGS_<x>   extra rustflags per target family
#   CARGO_TARGET_<TRIPLE>_RUSTFLAGS / _RUNNER  the same, in cargo's own per-target form
#   Targets without a prebuilt std need RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_BUILD_STD=std,panic_abort
#   for that cargo call only (or: pyaket_cross_target_env TARGET, defined in env.sh).
#   PYAKET_CROSS_APPLE_RUSTC / _TOOLCHAIN  when rustup could add the Apple targets' std
#               (aarch64/x86_64-apple-darwin): build those with RUSTC=$PYAKET_CROSS_APPLE_RUSTC
#               RUSTUP_TOOLCHAIN=$PYAKET_CROSS_APPLE_TOOLCHAIN (seconds to set up, no build-std);
#               unset: Debian's rustc with build-std, as for the other targets.
set -euo pipefail

CROSS_DIR="${1:-${CROSS_DIR:-$HOME/.cache/pyaket-cross}}"
PYTHON="${PYTHON:-python3}"
ZIGLANG_SPEC="${ZIGLANG_SPEC:-ziglang==0.17.1}"
ZIGBUILD_SPEC="${ZIGBUILD_SPEC:-cargo-zigbuild==0.24.0}"
export DEBIAN_FRONTEND=noninteractive

mkdir -p "$CROSS_DIR"
CROSS_DIR="$(cd "$CROSS_DIR" && pwd)"
T0=$SECONDS
log() { printf '[setup-cross %3ds] %s\n' "$((SECONDS - T0))" "$*" >&2; }

# ---------------------------------------------------------------- apt packages
APT_PKGS=(
  rustc-web cargo-web rust-web-src libstd-rust-web-dev libstd-rust-web-dev:arm64
  qemu-user libc6-arm64-cross libc6-i386 binutils gcc libc6-dev file
  osslsigncode openssl softhsm2 libengine-pkcs11-openssl
  minisign  # tests cross-check SHA256SUMS.minisig with the real CLI (test_self_update.py)
)
[[ "${CROSS_SKIP_WINE:-0}" == 1 ]] || APT_PKGS+=(wine64)
# shellcheck disable=SC2206
APT_PKGS+=(${CROSS_EXTRA_APT:-})

installed() { dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed$'; }
missing=()
for p in "${APT_PKGS[@]}"; do installed "$p" || missing+=("$p"); done
apt_updated=0
apt_update() {
  ((apt_updated)) && return 0
  # Third-party lists that cannot be reached must not fail the run.
  apt-get update -qq || log "apt-get update reported errors (continuing)"
  apt_updated=1
}
if ((${#missing[@]})); then
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "dpkg --add-architecture arm64"
    dpkg --add-architecture arm64
  fi
  log "apt-get install ${missing[*]}"
  apt_update
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "apt packages already installed"
fi
[[ -x /usr/bin/rustc && -x /usr/bin/cargo ]] || { log "Debian rustc/cargo missing"; exit 1; }

# ---------------------------------------------------------------- pip packages
PY_SCRIPTS="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
if "$PYTHON" -c 'import ziglang' 2>/dev/null && [[ -x "$PY_SCRIPTS/cargo-zigbuild" ]]; then
  log "ziglang + cargo-zigbuild already installed"
else
  log "pip install $ZIGLANG_SPEC $ZIGBUILD_SPEC"
  "$PYTHON" -m pip install -q --disable-pip-version-check "$ZIGLANG_SPEC" "$ZIGBUILD_SPEC"
fi
PYTHON_ABS="$(command -v "$PYTHON")"
# pyenv shims resolve through PATH/.python-version: pin the real interpreter instead.
PYTHON_ABS="$("$PYTHON_ABS" -c 'import sys; print(sys.executable)')"

# ---------------------------------------------------------------- shim dir
BIN="$CROSS_DIR/bin"
mkdir -p "$BIN"
ln -sfn /usr/bin/cargo "$BIN/cargo"
ln -sfn /usr/bin/rustc "$BIN/rustc"
[[ -e /usr/bin/rustdoc ]] && ln -sfn /usr/bin/rustdoc "$BIN/rustdoc"
ln -sfn "$PY_SCRIPTS/cargo-zigbuild" "$BIN/cargo-zigbuild"
# rustc strips Apple targets with `rust-objcopy` (searched in its sysroot, then PATH);
# Debian's rustc does not ship it: use rustup's (an llvm-objcopy), else Debian's llvm-objcopy.
objcopy=""
if command -v rustup >/dev/null 2>&1; then
  for tc in stable "$(rustup default 2>/dev/null | cut -d' ' -f1)"; do
    c="$(rustup run "$tc" rustc --print sysroot 2>/dev/null)/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-objcopy"
    if [[ -x "$c" ]]; then objcopy="$c"; break; fi
  done
fi
if [[ -z "$objcopy" ]]; then
  command -v llvm-objcopy >/dev/null 2>&1 || { apt_update; apt-get install -y -qq --no-install-recommends llvm >/dev/null; }
  objcopy="$(command -v llvm-objcopy)"
fi
rm -f "$BIN/rust-objcopy"
if [[ "$objcopy" == */lib/rustlib/*/bin/rust-objcopy ]]; then
  # rustup's rust-objcopy needs libLLVM from the toolchain's lib/ (rustup's proxies add it).
  objlib="${objcopy%/rustlib/*}"
  printf '#!/bin/sh\nLD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' \
    "$objlib" "$objcopy" >"$BIN/rust-objcopy"
else
  printf '#!/bin/sh\nexec "%s" "$@"\n' "$objcopy" >"$BIN/rust-objcopy"
fi
chmod +x "$BIN/rust-objcopy"
cat >"$BIN/zig.new" <<EOF
#!/bin/sh
exec "$PYTHON_ABS" -m ziglang "\$@"
EOF
chmod +x "$BIN/zig.new" && mv -f "$BIN/zig.new" "$BIN/zig"

# ---------------------------------------------------------------- Apple targets: rustup's std
# rustup's prebuilt std for the Apple targets downloads in seconds; build-std recompiles std on every
# cold target dir. Without rustup (or when its server cannot be reached) Apple builds use build-std.
APPLE_TOOLCHAIN="${CROSS_APPLE_TOOLCHAIN:-stable}"
APPLE_RUSTC=""
if command -v rustup >/dev/null 2>&1; then
  if rustup target add --toolchain "$APPLE_TOOLCHAIN" aarch64-apple-darwin x86_64-apple-darwin >/dev/null 2>&1; then
    # rustup's proxy, not the toolchain's binary: the proxy puts the toolchain's libLLVM on the
    # loader path of the rust-objcopy rustc runs to strip Apple executables.
    APPLE_RUSTC="$(dirname "$(command -v rustup)")/rustc"
    [[ -x "$APPLE_RUSTC" ]] || APPLE_RUSTC=""
  fi
fi
if [[ -n "$APPLE_RUSTC" ]]; then
  log "Apple targets: rustup's $APPLE_TOOLCHAIN std"
else
  log "Apple targets: no rustup std (rustup missing or offline), they need build-std"
fi

# ---------------------------------------------------------------- windows-gnu: libssp stubs
# Debian's std for windows-gnu links -lssp_nonshared -lssp; zig's mingw has none.
SSP="$CROSS_DIR/ssp"
mkdir -p "$SSP"
for a in libssp.a libssp_nonshared.a; do [[ -s "$SSP/$a" ]] || ar rcs "$SSP/$a"; done

# ---------------------------------------------------------------- Wine + ProcessPrng stub
WINE=/usr/lib/wine/wine64
WINEPREFIX_DIR="$CROSS_DIR/wineprefix"
STUB="$CROSS_DIR/wine/bcryptprimitives.dll"
if [[ "${CROSS_SKIP_WINE:-0}" != 1 ]]; then
  mkdir -p "$CROSS_DIR/wine"
  if [[ ! -s "$STUB" ]]; then
    log "building bcryptprimitives.dll stub"
    # Wine 8 lacks bcryptprimitives.dll; Rust >= 1.78 std (and uv.exe) import ProcessPrng.
    cat >"$CROSS_DIR/wine/bcryptprimitives-stub.c" <<'EOF'
#include <windows.h>
#include <ntsecapi.h>
/* Wine 8 lacks bcryptprimitives.dll; Rust >=1.78 std imports ProcessPrng from it. */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!RtlGenRandom(data, chunk)) return FALSE;
        data += chunk; len -= chunk;
    }
    return TRUE;
}
EOF
    # (a cold zig cache also builds zig's mingw-w64 CRT here, ~100 s; windows-gnu
    # cargo builds reuse it from ~/.cache/zig)
    rm -rf "$CROSS_DIR/wine/build" && mkdir -p "$CROSS_DIR/wine/build"
    (cd "$CROSS_DIR/wine/build" && "$PYTHON_ABS" -m ziglang cc -target x86_64-windows-gnu \
      -shared -O2 -s -o bcryptprimitives.dll ../bcryptprimitives-stub.c -ladvapi32)
    mv -f "$CROSS_DIR/wine/build/bcryptprimitives.dll" "$STUB"
    rm -rf "$CROSS_DIR/wine/build"
  fi
  if [[ ! -f "$WINEPREFIX_DIR/system.reg" ]]; then
    log "initialising Wine prefix"
    rm -rf "$WINEPREFIX_DIR"
    # mscoree/mshtml disabled: no Mono/Gecko install prompts (they cannot be downloaded).
    WINEPREFIX="$WINEPREFIX_DIR" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" \
      "$WINE" wineboot --init </dev/null >/dev/null 2>&1 || true
    WINEPREFIX="$WINEPREFIX_DIR" /usr/lib/wine/wineserver -w || true
    [[ -f "$WINEPREFIX_DIR/system.reg" ]] || { log "wineboot failed"; exit 1; }
  fi
  cmp -s "$STUB" "$WINEPREFIX_DIR/drive_c/windows/system32/bcryptprimitives.dll" ||
    cp -f "$STUB" "$WINEPREFIX_DIR/drive_c/windows/system32/bcryptprimitives.dll"
fi

# ---------------------------------------------------------------- optional: arm64 CPython
PY_ARM64="$CROSS_DIR/py-arm64"
if [[ "${CROSS_PY_ARM64:-0}" == 1 && ! -x "$PY_ARM64/usr/bin/python3.11" ]]; then
  log "unpacking Debian's arm64 CPython into $PY_ARM64"
  apt_update
  tmp="$(mktemp -d)"
  (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root \
    python3.11-minimal:arm64 libpython3.11-minimal:arm64 libpython3.11-stdlib:arm64 \
    libpython3.11:arm64 python3.11:arm64 libexpat1:arm64 zlib1g:arm64 libffi8:arm64 \
    libssl3:arm64 libbz2-1.0:arm64 liblzma5:arm64 libsqlite3-0:arm64 libncursesw6:arm64 \
    libtinfo6:arm64 libreadline8:arm64 libuuid1:arm64 libdb5.3:arm64 \
    libnsl2:arm64 libtirpc3:arm64 libcrypt1:arm64 \
    libgssapi-krb5-2:arm64 libkrb5-3:arm64 libk5crypto3:arm64 libkrb5support0:arm64 \
    libcom-err2:arm64 libkeyutils1:arm64 >/dev/null)
  rm -rf "$PY_ARM64.tmp" && mkdir -p "$PY_ARM64.tmp"
  for d in "$tmp"/*.deb; do dpkg -x "$d" "$PY_ARM64.tmp"; done
  rm -rf "$tmp" "$PY_ARM64" && mv "$PY_ARM64.tmp" "$PY_ARM64"
fi

# ---------------------------------------------------------------- env.sh
# libstd-rust-web-dev:arm64 brings Debian's multiarch arm64 libc into /lib/aarch64-linux-gnu.
# The ld.so of libc6-arm64-cross (/usr/aarch64-linux-gnu) would load that libc rather than its
# own (multiarch dirs come first): a mismatched pair, whose pthread_create spins forever under
# qemu. Run with one consistent pair: the multiarch one when it is there.
if [[ -e /lib/ld-linux-aarch64.so.1 ]]; then
  QEMU_AARCH64="qemu-aarch64 -L /"
else
  QEMU_AARCH64="qemu-aarch64 -L /usr/aarch64-linux-gnu"
fi
ENV_FILE="$CROSS_DIR/env.sh"
cat >"$ENV_FILE.tmp" <<EOF
# Generated by .ci/setup-cross.sh -- source it before building foreign targets.
export PYAKET_CROSS_DIR="$CROSS_DIR"
case ":\$PATH:" in *":$BIN:"*) ;; *) export PATH="$BIN:$PY_SCRIPTS:\$PATH" ;; esac
# Debian's rustc-web: its std (amd64 + arm64) and rust-src match it.
export RUSTC=/usr/bin/rustc
export WINEPREFIX="$WINEPREFIX_DIR"
export WINEDEBUG=-all
export WINEDLLOVERRIDES="mscoree,mshtml="
export PYAKET_CROSS_WINE=$WINE
export PYAKET_CROSS_QEMU_AARCH64="$QEMU_AARCH64"
# Targets whose std is prebuilt (Debian packages); every other target needs, for its
# cargo call only: RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_BUILD_STD=std,panic_abort
export PYAKET_CROSS_PREBUILT_STD="x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu"
export PYAKET_CROSS_BUILD_STD="std,panic_abort"
# Extra rustflags per target family (append to RUSTFLAGS if you set RUSTFLAGS yourself:
# RUSTFLAGS overrides cargo's per-target CARGO_TARGET_<TRIPLE>_RUSTFLAGS below).
export PYAKET_CROSS_RUSTFLAGS_windows_gnu="-L native=$SSP"
export PYAKET_CROSS_RUSTFLAGS_musl="-C link-self-contained=no"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUSTFLAGS="-L native=$SSP"
export CARGO_TARGET_I686_PC_WINDOWS_GNU_RUSTFLAGS="-L native=$SSP"
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C link-self-contained=no"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C link-self-contained=no"
# Runners for cargo run/test of foreign targets.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$QEMU_AARCH64"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=$WINE
EOF
if [[ -n "$APPLE_RUSTC" ]]; then
  cat >>"$ENV_FILE.tmp" <<EOF
# Apple targets: rustup's toolchain has their std (no build-std); see pyaket_cross_target_env.
export PYAKET_CROSS_APPLE_RUSTC="$APPLE_RUSTC"
export PYAKET_CROSS_APPLE_TOOLCHAIN="$APPLE_TOOLCHAIN"
EOF
fi
if [[ -x "$PY_ARM64/usr/bin/python3.11" ]]; then
  echo "export PYAKET_CROSS_PY_ARM64=\"$PY_ARM64\"   # run: qemu-aarch64 -L $PY_ARM64 $PY_ARM64/usr/bin/python3.11" >>"$ENV_FILE.tmp"
fi
cat >>"$ENV_FILE.tmp" <<'EOF'
# pyaket_cross_target_env TARGET: export/unset the build-std switches (and the rustc) for one
# target (TARGET may carry a zigbuild glibc suffix such as .2.17).
pyaket_cross_target_env() {
  export RUSTC=/usr/bin/rustc
  unset RUSTUP_TOOLCHAIN
  case "$1" in
    *-apple-darwin) if [[ -n "${PYAKET_CROSS_APPLE_RUSTC:-}" ]]; then
        export RUSTC="$PYAKET_CROSS_APPLE_RUSTC" RUSTUP_TOOLCHAIN="$PYAKET_CROSS_APPLE_TOOLCHAIN"
        unset RUSTC_BOOTSTRAP CARGO_UNSTABLE_BUILD_STD
        return
      fi ;;
  esac
  case " $PYAKET_CROSS_PREBUILT_STD " in
    *" ${1%.2.*} "*) unset RUSTC_BOOTSTRAP CARGO_UNSTABLE_BUILD_STD ;;
    *) export RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_BUILD_STD="$PYAKET_CROSS_BUILD_STD" ;;
  esac
}
EOF
mv -f "$ENV_FILE.tmp" "$ENV_FILE"

# ---------------------------------------------------------------- rcodesign (macOS signing)
# Installed by the plugin itself into its cache (HATCH_PYAKET_CACHE_DIR, else ~/.cache/hatch-pyaket),
# where builds and tests/e2e/test_signing.py find it: ~3 minutes once, then reused.
if [[ "${CROSS_SKIP_RCODESIGN:-0}" != 1 ]] && "$PYTHON" -c 'import hatch_pyaket.rcodesign' 2>/dev/null; then
  log "rcodesign for macOS signing (python -m hatch_pyaket.rcodesign)"
  "$PYTHON" -m hatch_pyaket.rcodesign >/dev/null
fi

log "done; environment for cross builds (also in $ENV_FILE):"
cat "$ENV_FILE"
