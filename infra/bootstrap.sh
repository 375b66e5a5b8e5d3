#!/usr/bin/env bash
# Prepares a fresh machine for the test suite and the demo: the Debian packages of the real
# services (only when run as root and only if missing), then a virtual environment with the
# package and its extras. Safe to run again: it does only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
# train: PyTorch (pinned to its CPU build), so that CI runs the tiny training and export tests.
EXTRAS="${EXTRAS:-edge,aggregator,train,dev}"

need_pkgs=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_pkgs+=(mosquitto)
command -v mosquitto_passwd >/dev/null 2>&1 || need_pkgs+=(mosquitto-clients)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_pkgs+=(postgresql)
# systemd-analyze verifies the agent's unit file (tests/unit/test_deployment_files.py).
command -v systemd-analyze >/dev/null 2>&1 || need_pkgs+=(systemd)
# LibreOffice (headless Calc, with UNO for its layout) and poppler print the workbook the way a
# reader does (tests/e2e/test_workbook_print.py, make workbook-pages). Installed without the
# recommended packages: the desktop extras would triple the download.
office_pkgs=()
command -v soffice >/dev/null 2>&1 || office_pkgs+=(libreoffice-calc-nogui)
[ -f /usr/lib/python3/dist-packages/uno.py ] || office_pkgs+=(python3-uno)
command -v pdftoppm >/dev/null 2>&1 || office_pkgs+=(poppler-utils)
if [ ${#office_pkgs[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
  echo "bootstrap: installing Debian packages: ${office_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${office_pkgs[@]}" >/dev/null 2>&1 || {
    apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${office_pkgs[@]}" >/dev/null
  }
elif [ ${#office_pkgs[@]} -gt 0 ]; then
  echo "bootstrap: missing ${office_pkgs[*]}; install them (sudo apt-get install --no-install-recommends" \
       "${office_pkgs[*]}) or the print tests will be skipped" >&2
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing Debian packages: ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${need_pkgs[@]}" >/dev/null 2>&1 || {
      apt-get update -q >/dev/null && apt-get install -y -q "${need_pkgs[@]}" >/dev/null
    }
  else
    echo "bootstrap: missing ${need_pkgs[*]}; install them (sudo apt-get install ${need_pkgs[*]})" \
         "or the tests that need them will be skipped" >&2
  fi
fi

stamp="$VENV/.installed-$EXTRAS"
if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing the package with extras [$EXTRAS] into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[$EXTRAS]"
  touch "$stamp"
fi
