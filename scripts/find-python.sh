#!/usr/bin/env bash
# Print the path of a Python >= 3.12 interpreter, or explain how to get one and exit 1.
# Order: $PYTHON, python3.12/3.13/3.14/python3 on PATH, then pyenv versions (oldest 3.12+ first).
set -u
ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }
candidates=()
[ -n "${PYTHON:-}" ] && candidates+=("$PYTHON")
for name in python3.12 python3.13 python3.14 python3; do
  p=$(command -v "$name" 2>/dev/null) && candidates+=("$p")
done
roots=()
command -v pyenv >/dev/null 2>&1 && roots+=("$(pyenv root 2>/dev/null)")
roots+=("${PYENV_ROOT:-$HOME/.pyenv}")
for root in "${roots[@]}"; do
  for p in $(ls -d "$root"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -V); do candidates+=("$p"); done
done
for p in "${candidates[@]}"; do
  if ok "$p"; then echo "$p"; exit 0; fi
done
cat >&2 <<'MSG'
bayescale needs Python >= 3.12 (jax 0.12 and arviz 1.x require it) and none was found.
Install one (e.g. `pyenv install 3.12` or your system's python3.12 package),
or point to it: make test PYTHON=/path/to/python3.12
MSG
exit 1
