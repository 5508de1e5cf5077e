# Sourced by the other scripts: make .venv and install the pinned requirements
# (again only when they changed). `source _venv.sh runtime` installs only what the
# product needs to run (scripts/demo.sh); the default also installs the test tools.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi
_want() { cat "$@" | sha256sum | cut -d' ' -f1; }
_install() {  # stamp-file requirements-file [files the stamp covers…]
  local stamp=$1 reqs=$2
  shift 2
  local want
  want=$(_want "$@")
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "==> installing $reqs"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$reqs"
    echo "$want" >"$stamp"
  fi
}
# The full set includes the runtime one, so a venv set up for the tests is also
# ready for the demo.
if [ "${1:-dev}" = runtime ] && [ "$(cat .venv/.requirements.sha 2>/dev/null)" = "$(_want requirements.txt requirements-dev.txt)" ]; then
  :
elif [ "${1:-dev}" = runtime ]; then
  _install .venv/.requirements-runtime.sha requirements.txt requirements.txt
else
  _install .venv/.requirements.sha requirements-dev.txt requirements.txt requirements-dev.txt
fi
