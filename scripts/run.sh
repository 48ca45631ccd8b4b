#!/usr/bin/env bash
# Builds and runs the daemon on its shipped default config (config/sloprobe.toml), which
# probes the built-in demo target: real numbers in the log within seconds, metrics on
# http://127.0.0.1:9464/metrics. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
export SLOPROBE_LOG="${SLOPROBE_LOG:-info,sloprobe=debug}"  # log every run, not only failures
exec cargo run --release --locked -- run -c config/sloprobe.toml "$@"
