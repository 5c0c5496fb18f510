#!/usr/bin/env bash
# Headless Chromium and its WebDriver from Debian's packages, for the browser tests (tests/test_mlflow_ui.py).
# Installs them when missing. Exit 0: `chromium` and `chromedriver` are on PATH; exit 3: no apt here (or no
# root to use it), so the tests skip; anything else: the install failed (the tests fail with its output).
set -euo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "no apt-get on this machine: install chromium and chromium-driver (Debian's names) yourself" >&2
    exit 3
fi
SUDO=()
if [ "$(id -u)" != 0 ]; then
    if ! sudo -n true 2>/dev/null; then
        echo "apt-get needs root: run 'sudo apt-get install -y chromium chromium-driver'" >&2
        exit 3
    fi
    SUDO=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq chromium chromium-driver >/dev/null
command -v chromium >/dev/null && command -v chromedriver >/dev/null
