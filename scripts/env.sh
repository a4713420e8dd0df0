# Shared settings for xstage's scripts: where caches live and how to find tools.
# Sourced, never run. Everything here is idempotent.

XSTAGE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Caches outside the clone, so a fresh clone on the same machine reuses them.
XSTAGE_CACHE="${XSTAGE_CACHE:-$HOME/.cache/xstage}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$XSTAGE_CACHE/target}"
XSTAGE_VENVS="$XSTAGE_CACHE/venv"

LOCALSTACK_SPEC="localstack-core[runtime]==2026.3.0"
LOCALSTACK_PINS=("cbor2<6" "pyopenssl<26")
MOTO_SPEC="moto[server]==5.2.5"
# Tools no one here wrote: clients of the emulator's Lambda Invoke API, cfn-lint, and
# cargo-lambda (a Lambda Runtime API emulator for the native bootstrap).
CLIENTS_SPEC=("awscli==1.46.3" "boto3==1.44.5" "cfn-lint==1.58.0" "cargo-lambda==1.9.2"
  "pyarrow==26.0.1")
# The emulator that enforces IAM (trust policies, ExternalId, session policies, SigV4). AGPL:
# only ever run as a separate test server, never linked into xstage.
# The read benchmark's peers (tests/peers/peers.py) and its charts. DuckDB's httpfs comes as a
# wheel, so DuckDB loads it offline from the wheel's extension directory.
PEERS_SPEC=("duckdb==1.4.4" "duckdb-ext-httpfs==1.4.4.20260205" "pyarrow==26.0.1"
  "polars==2.1.0" "boto3==1.44.5" "matplotlib==3.11.2")
FAKECLOUD_VERSION="0.51.0"
FAKECLOUD_ROOT="$XSTAGE_CACHE/tools/fakecloud-$FAKECLOUD_VERSION"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# await_job PID LOG WHAT: waits for a background job; if it failed, prints its log and exits.
await_job() {
  if ! wait "$1"; then
    cat "$2" >&2
    log "$3 failed"
    exit 1
  fi
}

# A Python >= 3.12 interpreter: LocalStack 2026.3 needs it.
find_python() {
  local cand
  for cand in "${XSTAGE_PYTHON:-}" python3.13 python3.12 \
      "$HOME"/.pyenv/versions/3.13*/bin/python3 "$HOME"/.pyenv/versions/3.12*/bin/python3 python3; do
    [ -n "$cand" ] || continue
    command -v "$cand" >/dev/null 2>&1 || [ -x "$cand" ] || continue
    if "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
      # Resolve pyenv shims to the real interpreter so the venv does not depend on PYENV_VERSION.
      "$cand" -c 'import sys; print(sys.executable)'
      return 0
    fi
  done
  echo "xstage: no Python >= 3.12 found; install one (pyenv install 3.13) or set XSTAGE_PYTHON" >&2
  return 1
}

# make_venv NAME STAMP PACKAGES... : a venv under the cache, rebuilt only when the package list changes.
make_venv() {
  local name=$1; shift
  local dir="$XSTAGE_VENVS/$name" want="$*" py
  if [ -f "$dir/.xstage-stamp" ] && [ "$(cat "$dir/.xstage-stamp")" = "$want" ]; then
    return 0
  fi
  py="$(find_python)" || return 1
  log "creating Python venv $name ($want)"
  rm -rf "$dir"
  "$py" -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check --upgrade pip >&2
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$@" >&2
  printf '%s' "$want" > "$dir/.xstage-stamp"
}

# fakecloud, once per machine: a debug build (no optimisation, no debug info) takes about 20
# minutes on two cores, a release build two to three times that; it serves tests fast either
# way. Niced, so that beside other builds it takes only the cores they leave idle.
install_fakecloud() {
  [ -x "$FAKECLOUD_ROOT/bin/fakecloud" ] && return 0
  log "installing fakecloud $FAKECLOUD_VERSION (once per machine, about 20 minutes)"
  local build="$XSTAGE_CACHE/tmp/fakecloud-build"
  rm -rf "$FAKECLOUD_ROOT.partial"
  CARGO_TARGET_DIR="$build" CARGO_PROFILE_DEV_DEBUG=0 CARGO_INCREMENTAL=0 \
    nice -n 10 cargo install --locked --debug --quiet fakecloud --version "$FAKECLOUD_VERSION" \
      --root "$FAKECLOUD_ROOT.partial" >&2
  rm -rf "$build" "$FAKECLOUD_ROOT"
  mv "$FAKECLOUD_ROOT.partial" "$FAKECLOUD_ROOT"
}

# LocalStack's test container image: the same LocalStack as the localstack venv, tagged with
# its version. No registry is reachable from these machines, so it is built here.
LOCALSTACK_IMAGE="xstage/localstack:${LOCALSTACK_SPEC##*==}"

# A Docker engine: Debian's docker.io installed if absent, dockerd started if not running.
ensure_docker() {
  docker info >/dev/null 2>&1 && return 0
  if ! command -v dockerd >/dev/null; then
    log "installing Docker's engine (Debian's docker.io)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io; } >&2 \
      || return 1
  fi
  log "starting dockerd (log: $XSTAGE_CACHE/tmp/dockerd.log)"
  mkdir -p "$XSTAGE_CACHE/tmp"
  nohup dockerd >"$XSTAGE_CACHE/tmp/dockerd.log" 2>&1 &
  local _
  for _ in $(seq 1 30); do
    docker info >/dev/null 2>&1 && return 0
    sleep 1
  done
  return 1
}

# The image the tests run LocalStack from (tests/harness/src/localstack.rs), built once per engine:
# a Debian trixie rootfs (debootstrap, its Python 3.13), the localstack venv's exact packages
# in /opt/localstack, `docker import`ed. About 3 minutes. Without an engine, or if the build
# fails, the tests run LocalStack as a process and say so; so does this, in one line.
container_images() {
  if ! ensure_docker; then
    log "no Docker engine: the tests will run LocalStack as a process"
    return 0
  fi
  docker image inspect "$LOCALSTACK_IMAGE" >/dev/null 2>&1 && return 0
  log "building the image $LOCALSTACK_IMAGE (debootstrap, then the localstack venv's packages)"
  make_venv localstack "$LOCALSTACK_SPEC" "${LOCALSTACK_PINS[@]}" || return 0
  if ! command -v debootstrap >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; } >&2 \
      || { log "no debootstrap: the tests will run LocalStack as a process"; return 0; }
  fi
  local root="$XSTAGE_CACHE/tmp/localstack-rootfs"
  rm -rf "$root"
  if ! (
    set -e
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates trixie "$root" \
      http://deb.debian.org/debian >&2
    # This machine's extra certificate authorities, for pip's downloads only.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
      cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
      chroot "$root" update-ca-certificates >/dev/null 2>&1
    fi
    "$XSTAGE_VENVS/localstack/bin/pip" freeze --all | grep -v '^\(pip\|setuptools\|wheel\)==' \
      >"$root/tmp/requirements.txt"
    chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin PIP_DEFAULT_TIMEOUT=180 /bin/sh -c \
      'python3 -m venv /opt/localstack && /opt/localstack/bin/pip install --quiet --disable-pip-version-check --no-deps -r /tmp/requirements.txt' >&2
    rm -f "$root"/usr/local/share/ca-certificates/*.crt "$root/tmp/requirements.txt"
    chroot "$root" update-ca-certificates --fresh >/dev/null 2>&1
    tar -C "$root" -c . | docker import \
      -c 'CMD ["/opt/localstack/bin/python", "-m", "localstack.runtime.main"]' \
      -c 'ENV PYTHONUNBUFFERED=1' - "$LOCALSTACK_IMAGE" >/dev/null
  ); then
    log "building $LOCALSTACK_IMAGE failed: the tests will run LocalStack as a process"
  fi
  rm -rf "$root"
}

# What the builds need: the wasm32-wasip2 target, and clang for the C code compiled into the
# components.
setup_toolchain() {
  command -v rustup >/dev/null && rustup target list --installed | grep -qx wasm32-wasip2 \
    || { log "adding rustup target wasm32-wasip2"; rustup target add wasm32-wasip2 >&2; }
  # zstd-sys and other C code need clang to target wasm32-wasip2.
  if ! command -v clang >/dev/null; then
    log "installing clang"
    apt-get update -qq >&2 && apt-get install -y -qq clang >&2
  fi
}

# What the tests and benches run: the Python venvs of LocalStack, moto and the clients. Mostly
# downloads, so scripts/test and scripts/demo make them beside the builds.
setup_venvs() {
  make_venv localstack "$LOCALSTACK_SPEC" "${LOCALSTACK_PINS[@]}"
  make_venv moto "$MOTO_SPEC"
  make_venv clients "${CLIENTS_SPEC[@]}"
}

# Where the tests find those tools (the venvs may still be in the making).
setup_paths() {
  # Installed by install_fakecloud (scripts/test runs it beside the builds).
  export XSTAGE_FAKECLOUD="$FAKECLOUD_ROOT/bin/fakecloud"
  export XSTAGE_LOCALSTACK_PYTHON="$XSTAGE_VENVS/localstack/bin/python"
  export XSTAGE_MOTO_SERVER="$XSTAGE_VENVS/moto/bin/moto_server"
  export XSTAGE_CLIENTS_PYTHON="$XSTAGE_VENVS/clients/bin/python"
}

# Everything the tests and the demo need; safe to call every time.
setup() {
  setup_toolchain
  setup_venvs
  setup_paths
}

# The WASI components the host runs: the stage query function and the sandbox probe, built
# for wasm32-wasip2 with the `wasm` profile (Cargo.toml) into $WASM_DIR, then stripped of
# their `name` sections; the named originals stay beside them as NAME.names.wasm, for
# scripts/lib/wasm_symbolize.py to name the functions of a trap's backtrace.
WASM_DIR="$CARGO_TARGET_DIR/wasm32-wasip2/wasm"
build_components() {
  log "building the WASI components (wasm32-wasip2, profile wasm)"
  cargo build --locked --profile wasm --target wasm32-wasip2 -p xstage-component -p xstage-sandbox-guest
  "$(find_python)" "$XSTAGE_ROOT/scripts/lib/wasm_strip.py" "$WASM_DIR" xstage_component xstage_sandbox_guest
}
