#!/usr/bin/env bash
# Checks the layout rules the README states, so they cannot rot silently:
#  - only `eipd` depends on the AF_XDP driver, and `eipctl` builds with no clang
#    (CLANG points nowhere: the driver's build script would fail if it ran);
#  - every crate but the driver forbids unsafe code;
#  - no source file over 600 lines without a "Why one file:" reason near its top.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0

users=$(cargo tree --workspace -i eip-afxdp --prefix none -e normal,build 2>/dev/null \
  | awk '{print $1}' | sort -u | grep -v '^eip-afxdp$' || true)
if [ "$users" != "eipd" ]; then
  echo "layout: eip-afxdp must be a dependency of eipd only, found: ${users:-none}" >&2
  fail=1
fi

if ! CLANG=/nonexistent/clang cargo check -q -p eipctl -p eip-control -p eip-dataplane; then
  echo "layout: eipctl, eip-control or eip-dataplane needs clang" >&2
  fail=1
fi

for root in crates/*/src/lib.rs crates/*/src/main.rs; do
  case "$root" in crates/eip-afxdp/*) continue ;; esac
  if ! grep -q '^#!\[forbid(unsafe_code)\]' "$root"; then
    echo "layout: $root lacks #![forbid(unsafe_code)]" >&2
    fail=1
  fi
done

while IFS= read -r file; do
  lines=$(wc -l <"$file")
  if [ "$lines" -gt 600 ] && ! head -n 40 "$file" | grep -q "Why one file:"; then
    echo "layout: $file has $lines lines and no 'Why one file:' reason near its top" >&2
    fail=1
  fi
done < <(find crates -name '*.rs' -not -path '*/target/*')

[ "$fail" -eq 0 ] && echo "layout: ok"
exit "$fail"
