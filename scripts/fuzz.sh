#!/usr/bin/env bash
# Coverage-guided fuzzing of the RUM beacon parsers (src/rum/beacon.rs) with libFuzzer,
# through the libfuzzer-sys crate, on the stable toolchain: the instrumentation is
# LLVM's SanitizerCoverage, which stable rustc enables with -C passes / -C llvm-args
# (what `cargo fuzz build -s none` passes; cargo-fuzz itself is not needed).
#
#   scripts/fuzz.sh [SECONDS]          fuzz each target SECONDS (default 60) from fuzz/corpus
#   scripts/fuzz.sh [SECONDS] --merge  also merge new coverage-increasing inputs into fuzz/corpus
#
# A crash leaves its input in fuzz/target/artifacts/ and exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
merge=${2:-}
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps the instrumentation off build scripts and proc macros.
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --locked -q --bins --target "$host"
bin=target/$host/release
mkdir -p target/artifacts
for t in web_vitals faro; do
    work=target/work/$t
    mkdir -p "$work"
    # New inputs go to the work dir; the checked-in corpus is only read. The fuzzer's own
    # status decides (a `| grep … || true` pipeline once hid a crash: PIPESTATUS was true's).
    status=0
    "$bin/$t" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 \
        -artifact_prefix=target/artifacts/$t- -print_final_stats=1 "$work" "corpus/$t" >"$work.log" 2>&1 \
        || status=$?
    grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+== ERROR|SUMMARY|thread .* panicked)" "$work.log" || true
    if [ "$status" -ne 0 ]; then
        echo "fuzz target $t failed (exit $status): its input is in fuzz/target/artifacts/; the log is fuzz/$work.log"
        exit 1
    fi
    if [ "$merge" = "--merge" ]; then
        "$bin/$t" -merge=1 "corpus/$t" "$work" >/dev/null 2>&1
    fi
    echo "$t: corpus $(ls "corpus/$t" | wc -l) files, work $(ls "$work" | wc -l) files"
done
