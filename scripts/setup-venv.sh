# Sourced by run.sh and test.sh: create .venv and install the project (and EXTRAS) into it.
# Two distributions, both editable: the light client with the protocol (clients/python) and the
# server (the repository root), which depends on the first.
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-${EXTRAS:-base}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ clients/python/pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e "./clients/python[arrow,kernel]" -e ".${EXTRAS:+[$EXTRAS]}"
  touch "$stamp"
fi
