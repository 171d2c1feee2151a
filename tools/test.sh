#!/usr/bin/env bash
# The test command: installs everything the suite needs (venv, package with test extras,
# Chromium, node packages) and runs it. Safe to re-run; pip and npm caches make it quick.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${QVAC_NB_VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip
python -m pip install -q ".[test]"

# Browser tests drive Debian's Chromium; front-end tests need node packages. apt waits up to 10 min for
# another apt-get holding the dpkg lock instead of failing at once.
if [ -z "${QVAC_NB_SKIP_BROWSER:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get -o DPkg::Lock::Timeout=600 update -qq && apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null
  else
    sudo apt-get -o DPkg::Lock::Timeout=600 update -qq &&
      sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null
  fi
fi
if [ -f js/package.json ]; then
  (cd js && npm ci --no-audit --no-fund --loglevel=error && npm test && npm run check-bundle)
fi

ruff check qvac_nb tests benchmarks
# Types: the installed package (with its compiled engine's stub, _engine.pyi) as a user's type checker reads
# it; from tests/ so that `qvac_nb` is the installed copy, not the source folder without the stub.
(cd tests && mypy --config-file ../pyproject.toml -p qvac_nb)

# Run from tests/ so `import qvac_nb` is the installed package (with its compiled engine).
set +e
(cd tests && python -m pytest -p no:cacheprovider -ra --durations=30 "$@" .)
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$status"
