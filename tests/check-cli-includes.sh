#!/bin/sh
# check-cli-includes.sh: the command line (cli/) is a client of libddpm's
# public API, as stable-diffusion.cpp's examples/cli is of its library: its
# quoted includes are ddpm.h, its own headers (cli.h, train-mpi.h: any in
# cli/) and the build's config.h, never
# the engine's private headers.  What it needs goes into ddpm.h, documented.
# TAP output, one test per file.
set -u
srcdir=${1:?usage: check-cli-includes.sh SOURCE_ROOT}
cd "$srcdir" || exit 1

files=$(ls cli/*.c cli/*.h)
echo "1..$(echo $files | wc -w)"
i=0
status=0
for f in $files; do
  i=$((i + 1))
  bad=$(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f" |
          grep -vx -e ddpm.h -e config.h |
          while read -r h; do [ -f "cli/$h" ] || echo "$h"; done | tr '\n' ' ')
  if [ -z "$bad" ]; then
    echo "ok $i - $f"
  else
    echo "not ok $i - $f includes $bad(private to the engine)"
    status=1
  fi
done
exit $status
