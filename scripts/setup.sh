#!/usr/bin/env bash
# Creates .venv with the CPU build of torch 2.13.0 and SemanticSynth (editable, with the test, web, scale and realism extras),
# and the Debian packages the web app and its browser test need (Chromium and its driver; Mesa's EGL for
# off-screen rendering). Safe to rerun: torch and the Debian packages are installed once; the package and its
# dependencies are synced each time.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -c "import torch" 2>/dev/null || pip install -q torch==2.13.0
pip install -q -e ".[test,web,scale,realism]"

# Debian packages: the browser test drives Debian's Chromium (nothing downloads a browser at run time).
DEB_PACKAGES="chromium chromium-driver libegl1 libgl1-mesa-dri"
missing=""
for p in $DEB_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  if command -v apt-get >/dev/null; then
    echo "installing Debian packages:$missing"
    $SUDO apt-get update -qq || true
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing \
      || echo "warning: could not install$missing; the browser test will fail until they are installed" >&2
  else
    echo "warning: no apt-get; install$missing (or their equivalents) for the web app's browser test" >&2
  fi
fi
