#!/usr/bin/env bash
# What the test suite needs beyond the Python packages, set up once (each step is skipped when already done):
# - the teacher models (MediaPipe Pose and Selfie, from the mediapipe wheel on PyPI) in .cache/teachers;
# - a wheelhouse of the light install's dependencies in .cache/wheelhouse, for the offline install test;
# - the webcam page's npm packages (web/node_modules, web/vendor, web/models);
# - Debian's Chromium for the page's browser test, where it is missing and this user may run apt-get.
# A step that cannot run here prints one line saying what to install; the tests that need it then skip (under
# CI=true, a missing browser fails them instead).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

if ! $PY -c "from asbunet.data.teachers import TEACHER_FILES as T; from pathlib import Path; import sys; \
sys.exit(not all((Path('.cache/teachers') / Path(f).name).is_file() for f in T.values()))"; then
    $PY -c "from asbunet.data.teachers import fetch_teachers; fetch_teachers('.cache/teachers')" \
        || echo "setup: teacher models not fetched (pip download mediapipe failed); the teacher test will skip"
fi

STAMP=.cache/wheelhouse/.requirements
REQS=$($PY -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))")
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$REQS" ]; then
    mkdir -p .cache/wheelhouse
    if echo "$REQS" | $PY -m pip download --quiet --only-binary=:all: -d .cache/wheelhouse -r /dev/stdin; then
        echo "$REQS" > "$STAMP"
    else
        echo "setup: the wheelhouse for the offline install test was not filled (pip download failed); it will skip"
    fi
fi

if command -v npm >/dev/null && command -v node >/dev/null; then
    $PY web/serve.py --setup-only >/dev/null || echo "setup: the webcam page's npm packages were not installed"
else
    echo "setup: node and npm not found: the webcam page's browser tests will skip (install Node.js 18 or later)"
fi

if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null && [ -z "${ASBUNET_CHROMIUM:-}" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing Debian's chromium for the webcam page's browser tests (apt-get)"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            chromium >/dev/null) || echo "setup: apt-get install chromium failed; the browser tests will skip"
    else
        echo "setup: Chromium not found and cannot be installed here (needs root and apt-get): the browser tests" \
            "will skip; install it with 'apt-get install chromium' or name an executable in ASBUNET_CHROMIUM"
    fi
fi
exit 0
