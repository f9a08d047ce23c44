#!/usr/bin/env bash
# CI smoke fuzzing: builds every fuzz target and runs each for FUZZ_SECONDS (default 30) on
# tmpfs scratch folders; exits 1 if any target crashes, 0 otherwise.
#
# Needs a nightly toolchain and cargo-fuzz. Without nightly it prints "skipped: ..." and exits
# 0; with nightly but without cargo-fuzz it installs cargo-fuzz (about a minute), and skips if
# that fails.
#
#   fuzz/ci-smoke.sh                 # every target, 30 s each
#   FUZZ_SECONDS=5 fuzz/ci-smoke.sh  # shorter
#   fuzz/ci-smoke.sh ops_file        # some targets only
#
# Inputs that grow coverage go to fuzz/corpus/<target>/ (not in git); the committed seeds in
# fuzz/seeds/<target>/ are read too. Crashing inputs go to fuzz/artifacts/<target>/.
set -uo pipefail

cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-30}

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "skipped: no nightly toolchain (rustup toolchain install nightly)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: installing it"
    if ! cargo install cargo-fuzz --locked; then
        echo "skipped: cargo-fuzz is missing and could not be installed"
        exit 0
    fi
fi

start=$(date +%s)
if ! cargo +nightly fuzz build -O; then
    echo "FAILED: the fuzz targets do not build"
    exit 1
fi
# The fuzz crate's own unit tests (input decoding).
if ! cargo +nightly test --lib; then
    echo "FAILED: the fuzz crate's unit tests"
    exit 1
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# One scratch folder for the run, on tmpfs when there is one; removed at exit.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    BRAINCACHE_FUZZ_TMP=$(mktemp -d /dev/shm/braincache-fuzz.XXXXXX)
else
    BRAINCACHE_FUZZ_TMP=$(mktemp -d)
fi
export BRAINCACHE_FUZZ_TMP
trap 'rm -rf "$BRAINCACHE_FUZZ_TMP"' EXIT

# A plain open trusts a cleanly closed redb file, and a few damaged ones make redb abort the
# process (tests/fuzz_regressions.rs, the ignored `redb_*` tests); open_redb_file finds one
# within seconds. So its files are opened with `check_integrity_on_open()`, which refuses them (see
# fuzz/src/redb_files.rs). Set BRAINCACHE_FUZZ_REDB_VERIFY= (empty) to fuzz the plain open.
export BRAINCACHE_FUZZ_REDB_VERIFY=${BRAINCACHE_FUZZ_REDB_VERIFY-1}
[ -z "$BRAINCACHE_FUZZ_REDB_VERIFY" ] && unset BRAINCACHE_FUZZ_REDB_VERIFY

failed=()
for t in "${targets[@]}"; do
    # Per-target options: a dictionary for the JSON targets, input sizes that keep a run's
    # operations few, and no leak checks where a backend keeps state across runs (ops_redb) or
    # redb keeps caches (the other redb targets).
    opts=(-max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 -print_final_stats=1)
    case "$t" in
        open_json_file) opts+=(-dict=dicts/json.dict) ;;
        decode_file_entries) opts+=(-dict=dicts/json.dict -max_len=256) ;;
        ops_file | ops_memory) opts+=(-max_len=128) ;;
        ops_redb) opts+=(-max_len=64 -detect_leaks=0) ;;
        # A damaged page size makes one redb read allocate ~4.2 GB before it fails (the ignored
        # test redb_reading_a_damaged_file_does_not_allocate_gigabytes): above the 4 GB limit.
        open_redb_file) opts+=(-max_len=512 -detect_leaks=0 -rss_limit_mb=8192) ;;
        decode_redb_entries) opts+=(-max_len=256 -detect_leaks=0) ;;
        msgpack_reader) opts+=(-max_len=512) ;;
    esac
    mkdir -p "corpus/$t"
    dirs=("corpus/$t")
    [ -d "seeds/$t" ] && dirs+=("seeds/$t")
    log="$BRAINCACHE_FUZZ_TMP/$t.log"
    echo "== $t (${seconds} s)"
    # The outer timeout only guards against a run that never ends (a hang outside an input).
    if timeout $((seconds + 300)) cargo +nightly fuzz run -O "$t" "${dirs[@]}" -- "${opts[@]}" >"$log" 2>&1; then
        grep -E "^#[0-9]+[[:space:]]+DONE" "$log" | tail -1
    else
        failed+=("$t")
        echo "FAILED: $t"
        grep -E "panicked at|ERROR:|SUMMARY|Test unit written|^[[:space:]]+cargo fuzz run" "$log" | grep -v "aborts only if not caught" | head -20
    fi
done

echo "fuzz smoke: ${#targets[@]} targets in $(($(date +%s) - start)) s"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "FAILED targets: ${failed[*]}"
    exit 1
fi
