#!/usr/bin/env bash
# Installs sloprobe: the binary, the systemd unit with its sysusers and tmpfiles entries,
# an example config (never over an existing one), shell completions, the man page and the
# config schema. Honours DESTDIR (staging root) and PREFIX (default /usr); BIN picks the
# binary (default target/release/sloprobe, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX="${PREFIX:-/usr}"
DESTDIR="${DESTDIR:-}"
BIN="${BIN:-target/release/sloprobe}"
[ -x "$BIN" ] || cargo build --release --locked
root="$DESTDIR"

install -Dm755 "$BIN" "$root$PREFIX/bin/sloprobe"
install -d "$root$PREFIX/lib/systemd/system" "$root$PREFIX/lib/sysusers.d" "$root$PREFIX/lib/tmpfiles.d"
sed "s|/usr/bin/sloprobe|$PREFIX/bin/sloprobe|" systemd/sloprobe.service > "$root$PREFIX/lib/systemd/system/sloprobe.service"
chmod 644 "$root$PREFIX/lib/systemd/system/sloprobe.service"
install -Dm644 systemd/sloprobe.sysusers "$root$PREFIX/lib/sysusers.d/sloprobe.conf"
install -Dm644 systemd/sloprobe.tmpfiles "$root$PREFIX/lib/tmpfiles.d/sloprobe.conf"

install -d -m 750 "$root/etc/sloprobe" "$root/etc/sloprobe/probes.d"
if [ ! -e "$root/etc/sloprobe/sloprobe.toml" ]; then
    install -m 640 config/example.toml "$root/etc/sloprobe/sloprobe.toml"
fi
install -Dm644 config/sloprobe.schema.json "$root$PREFIX/share/sloprobe/sloprobe.schema.json"

install -d "$root$PREFIX/share/bash-completion/completions" "$root$PREFIX/share/zsh/site-functions" \
    "$root$PREFIX/share/fish/vendor_completions.d" "$root$PREFIX/share/man/man1"
"$BIN" completions bash > "$root$PREFIX/share/bash-completion/completions/sloprobe"
"$BIN" completions zsh > "$root$PREFIX/share/zsh/site-functions/_sloprobe"
"$BIN" completions fish > "$root$PREFIX/share/fish/vendor_completions.d/sloprobe.fish"
"$BIN" man > "$root$PREFIX/share/man/man1/sloprobe.1"

echo "installed into ${root:-/} (prefix $PREFIX)"
if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null 2>&1; then
    echo "next: systemd-sysusers; systemd-tmpfiles --create; systemctl daemon-reload; systemctl enable --now sloprobe"
fi
