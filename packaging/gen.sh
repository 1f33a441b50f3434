#!/usr/bin/env bash
# Generates what the Debian package ships besides the binaries, from the binaries
# themselves (their clap definitions), so it cannot drift from the options they take:
#   OUT/man/*.8.gz            eipd(8), eipctl(8) and one page per subcommand
#   OUT/completions/{bash,zsh,fish}/...
# Usage: packaging/gen.sh BIN_DIR OUT   (BIN_DIR holds the built eipd and eipctl)
set -euo pipefail
bin=${1:?usage: gen.sh BIN_DIR OUT}
out=${2:?usage: gen.sh BIN_DIR OUT}

rm -rf "$out"
mkdir -p "$out/man" "$out/completions/bash" "$out/completions/zsh" "$out/completions/fish"
for cmd in eipd eipctl; do
  "$bin/$cmd" generate-man "$out/man" >/dev/null
  "$bin/$cmd" completions bash >"$out/completions/bash/$cmd"
  "$bin/$cmd" completions zsh >"$out/completions/zsh/_$cmd"
  "$bin/$cmd" completions fish >"$out/completions/fish/$cmd.fish"
done
# Debian ships man pages compressed; -n leaves out the time stamp (reproducible).
gzip -9n "$out"/man/*.8
echo "gen.sh: $(ls "$out/man" | wc -l) man pages and 6 completion scripts in $out"
