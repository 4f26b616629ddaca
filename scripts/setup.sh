# Sourced by scripts/test and scripts/demo: check the prerequisites first, then install the
# project into its own virtual environment (.venv) exactly as uv.lock says.
#
#   require python java maven go cargo openssl prometheus   # each names what is missing and how to get it
#   sync_venv [--extra test]                        # uv sync --frozen into .venv; puts it on PATH

UV_VERSION=0.13.9  # keep equal to scripts/uv-requirements.txt
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/connector"
missing=()

_need() {  # _need WHAT HOW
  missing+=("  - $1: $2")
}

_check_python() {
  if ! command -v python3 >/dev/null; then
    _need "python3 (3.11 or newer)" "apt-get install python3 python3-venv"
    return
  fi
  if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    _need "Python 3.11 or newer (found $(python3 -V 2>&1))" "install python3.11+"
  fi
  # Debian splits venv and ensurepip out of python3: without them `python3 -m venv` fails.
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    _need "python3's venv module" "apt-get install python3-venv"
  fi
}

_check_java() {
  local major
  if ! command -v java >/dev/null; then
    _need "Java 17 or newer (the local Kafka broker)" "apt-get install openjdk-17-jre-headless"
    return
  fi
  major=$(java -XshowSettings:properties -version 2>&1 |
    sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p')
  if [ -n "$major" ] && [ "$major" -lt 17 ]; then
    _need "Java 17 or newer (found Java $major)" "apt-get install openjdk-17-jre-headless"
  fi
}

_check_maven() {
  command -v mvn >/dev/null || _need "Maven (fetches the Kafka jars once)" "apt-get install maven"
}

_check_openssl() {
  command -v openssl >/dev/null ||
    _need "the openssl CLI (makes the secured test broker's CA)" "apt-get install openssl"
}

_check_cargo() {
  command -v cargo >/dev/null ||
    _need "Rust's cargo (builds the native OTLP encoders; installs the local Schema Registry, rivven-schema, once)" \
      "https://rustup.rs, or apt-get install cargo"
}

_check_go() {
  local version
  if ! command -v go >/dev/null; then
    _need "Go 1.24 or newer (builds Jaeger once)" "https://go.dev/doc/install"
    return
  fi
  version=$(go env GOVERSION 2>/dev/null)
  if ! printf '%s\n' "$version" | awk -F'[go.]' '{ exit !($3 > 1 || ($3 == 1 && $4 >= 24)) }'; then
    _need "Go 1.24 or newer (found ${version:-an unknown version}; Jaeger's build uses go get -tool)" \
      "https://go.dev/doc/install"
  fi
}

_check_prometheus() {
  command -v prometheus >/dev/null && return
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    _need "a prometheus binary on PATH (a real Prometheus scrapes the connector in tests)" \
      "run as root with apt-get (Debian's prometheus package is installed for you), or put prometheus on PATH"
  fi
}

_check_chromium() {
  command -v chromium >/dev/null && return
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    _need "a chromium binary on PATH (the HTML report is opened in a real, headless browser)" \
      "run as root with apt-get (Debian's chromium package is installed for you), or put chromium on PATH"
  fi
}

require() {
  missing=()
  local what
  for what in "$@"; do "_check_$what"; done
  if [ ${#missing[@]} -gt 0 ]; then
    printf '%s: missing prerequisites, nothing was installed:\n' "$(basename "$0")" >&2
    printf '%s\n' "${missing[@]}" >&2
    exit 1
  fi
}

install_prometheus() {
  command -v prometheus >/dev/null && return
  echo "$(basename "$0"): installing Debian's prometheus" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null
}

install_chromium() {
  command -v chromium >/dev/null && return
  echo "$(basename "$0"): installing Debian's chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null
}

# uv itself lives in a venv of its own in the cache, installed with pinned hashes.
_uv() {
  local home="$CACHE_DIR/uv-$UV_VERSION"
  if [ ! -x "$home/bin/uv" ]; then
    echo "$(basename "$0"): installing uv $UV_VERSION into $home" >&2
    rm -rf "$home.tmp"
    python3 -m venv "$home.tmp"
    "$home.tmp/bin/python" -m pip install --quiet --disable-pip-version-check \
      --require-hashes --only-binary=:all: -r scripts/uv-requirements.txt
    rm -rf "$home" && mv "$home.tmp" "$home"
  fi
  UV="$home/bin/uv"
}

sync_venv() {
  _uv
  # The image's Python minor version (.python-version) when this machine has it, so the
  # tests run what the image runs; else python3 (uv.lock is resolved for every 3.11+).
  local python="python$(cat .python-version)"
  command -v "$python" >/dev/null || python=python3
  # --frozen: install uv.lock as it is, resolve nothing; never fetch a Python of uv's own.
  UV_PYTHON_DOWNLOADS=never "$UV" sync --quiet --frozen --python "$python" "$@"
  export VIRTUAL_ENV="$PWD/.venv" UV
  export PATH="$VIRTUAL_ENV/bin:$PATH"
}

# The native OTLP encoders (native/, Rust with PyO3, one abi3 build for every CPython 3.11+),
# built from native/Cargo.lock into connector/otlp/, where the package looks for them;
# without them it takes its pure-Python path (scripts/demo does). Renamed into place, so a
# running connector keeps the file it loaded.
build_native() {
  local target="${XDG_CACHE_HOME:-$HOME/.cache}/connector/native-target"
  PYO3_NO_PYTHON=1 cargo build --quiet --release --locked --manifest-path native/Cargo.toml \
    --target-dir "$target"
  cp "$target/release/lib_native.so" connector/otlp/.native.tmp
  mv connector/otlp/.native.tmp connector/otlp/_native.abi3.so
}
