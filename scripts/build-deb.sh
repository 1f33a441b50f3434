#!/usr/bin/env bash
# Builds the Debian package `eipd` (eipd, eipctl, the systemd unit, man pages,
# completions, the example configuration as /etc/eipd/pop.toml) with cargo-deb,
# plus eipd-dbgsym (debug info), lists it, and checks what it must contain:
#   - the binaries, the unit, the man pages, the completions, the conffile;
#   - the packaged eipd says which commit it is (`--version`);
#   - the packaged unit passes `systemd-analyze verify` against the packaged
#     binary and man pages (ExecStart rewritten to the unpacked copy).
# Installs cargo-deb (from crates.io) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deb >/dev/null; then
  echo "build-deb: installing cargo-deb"
  cargo install cargo-deb --locked --version '^3' --quiet
fi

cargo build --release -p eipd -p eipctl
target=$(cargo metadata --no-deps --format-version 1 |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
packaging/gen.sh "$target/release" "$target/release/eipd-assets"
# --dbgsym: stripped binaries in the package, their debug info (the release
# profile keeps line tables for profiling) in eipd-dbgsym_*.ddeb beside it.
built=$(cargo deb -p eipd --no-build --dbgsym --quiet)
echo "$built" | sed 's/^/build-deb: /'
deb=$(grep '\.deb$' <<<"$built")
dpkg-deb --info "$deb"
dpkg-deb --contents "$deb"

fail=0
contents=$(dpkg-deb --contents "$deb" | awk '{print $6}')
for path in \
  ./usr/sbin/eipd ./usr/bin/eipctl \
  ./usr/lib/systemd/system/eipd.service \
  ./etc/eipd/pop.toml ./usr/share/doc/eipd/examples/pop.toml \
  ./usr/share/doc/eipd/operations.md \
  ./usr/share/man/man8/eipd.8.gz ./usr/share/man/man8/eipd-run.8.gz \
  ./usr/share/man/man8/eipctl.8.gz ./usr/share/man/man8/eipctl-show.8.gz \
  ./usr/share/bash-completion/completions/eipctl \
  ./usr/share/zsh/vendor-completions/_eipctl \
  ./usr/share/fish/vendor_completions.d/eipctl.fish; do
  if ! grep -qxF "$path" <<<"$contents"; then
    echo "build-deb: $path missing from the package" >&2
    fail=1
  fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb --extract "$deb" "$work/root"
dpkg-deb --ctrl-tarfile "$deb" | tar -x -C "$work" ./conffiles
if ! grep -qx /etc/eipd/pop.toml "$work/conffiles"; then
  echo "build-deb: /etc/eipd/pop.toml is not a conffile" >&2
  fail=1
fi
for cmd in usr/sbin/eipd usr/bin/eipctl; do
  version=$("$work/root/$cmd" --version)
  echo "build-deb: /$cmd --version: $version"
  if ! grep -qE '^eip(d|ctl) [0-9.]+ \(([0-9a-f]{7,}(-dirty)?|unknown)\)$' <<<"$version"; then
    echo "build-deb: unexpected --version output" >&2
    fail=1
  fi
done
sed "s#^ExecStart=/usr/sbin/eipd #ExecStart=$work/root/usr/sbin/eipd #" \
  "$work/root/usr/lib/systemd/system/eipd.service" >"$work/eipd.service"
# verify exits 0 on keys it ignores: any line on stderr is a finding, except the
# notice that this machine was not booted with systemd (containers, CI).
MANPATH="$work/root/usr/share/man" systemd-analyze verify "$work/eipd.service" \
  2>"$work/verify.out" || fail=1
grep -v 'not been booted with systemd\|Failed to connect to bus' "$work/verify.out" \
  >"$work/verify.err" || true
if [ -s "$work/verify.err" ]; then
  echo "build-deb: systemd-analyze verify of the packaged unit:" >&2
  cat "$work/verify.err" >&2
  fail=1
fi

[ "$fail" -eq 0 ] && echo "build-deb: ok"
exit "$fail"
