#!/usr/bin/env bash
# The main job: set up a venv with qvac_nb and JupyterLab, then open the Studio tour.
#   bash tools/start.sh [jupyter lab options...]   e.g. --port 8899 --no-browser
#   bash tools/start.sh --install-only             set up, don't start JupyterLab
# QVAC_NB_VENV picks the venv (default .venv). Safe to re-run: pip skips what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${QVAC_NB_VENV:-.venv}
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "qvac_nb needs Python 3.10 or newer as python3; found: $(python3 --version 2>&1)" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" || {
    echo "could not create $VENV; on Debian/Ubuntu install the venv module: apt install python3-venv" >&2
    exit 1
  }
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip
python -m pip install -q . jupyterlab

# --install-only may come anywhere among the options; the others go to JupyterLab.
install_only=0
lab_args=()
for arg in "$@"; do
  if [ "$arg" = "--install-only" ]; then install_only=1; else lab_args+=("$arg"); fi
done
again="bash tools/start.sh"
[ "$VENV" != ".venv" ] && again="QVAC_NB_VENV=$VENV $again"
if [ "$install_only" = 1 ]; then
  echo "installed into $VENV; start with: $again"
  exit 0
fi
# Containers often run as root, which JupyterLab refuses without this flag.
extra=()
[ "$(id -u)" = 0 ] && extra+=(--allow-root)
echo "opening the Studio tour: notebooks/06_studio_tour.ipynb (JupyterLab prints its address below)"
exec jupyter lab ${extra[@]+"${extra[@]}"} notebooks/06_studio_tour.ipynb ${lab_args[@]+"${lab_args[@]}"}
