#!/usr/bin/env bash
# Headless Chromium for the browser tests (tests/report/test_browser.py loads report.html in it).
#
#   bash scripts/chromium.sh        install Debian's `chromium` if missing, then print the path of the
#                                   chromium binary: the only line written to stdout
#
# Idempotent, and instant when chromium is already on the PATH. Installing needs root or sudo (CI runs
# as root); with neither, or when the install fails, it warns on stderr and prints nothing, so the
# browser tests skip (or fail under CI, which must not skip them silently). Nothing else is installed:
# the tests drive Chromium over the DevTools protocol on a pipe (--remote-debugging-pipe), with no
# chromedriver and no Python package. fonts-liberation (a Recommends of chromium, which we install
# with --no-install-recommends) is added so that text in the screenshots has real metric-compatible fonts.
set -euo pipefail

SELF="$(readlink -f "${BASH_SOURCE[0]}")"

find_chromium() {
  local bin
  for bin in chromium chromium-browser; do
    if command -v "$bin" >/dev/null 2>&1; then command -v "$bin"; return 0; fi
  done
  return 1
}

install_chromium() {
  local sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null && { sudo -n true 2>/dev/null || [[ -t 0 ]]; }; then
      sudo=(sudo)
    else
      echo "chromium.sh: chromium is missing and installing it needs root or sudo; the browser tests will skip"
      return 0
    fi
  fi
  if ! command -v apt-get >/dev/null; then
    echo "chromium.sh: chromium is missing and there is no apt-get to install it; the browser tests will skip"
    return 0
  fi
  # Serialised, as two `make test` may start at once (apt would also wait on its own lock below). The
  # lock is on this script's own file: a lock file in /tmp could belong to another user.
  exec 9<"$SELF"
  flock 9
  if find_chromium >/dev/null; then exec 9<&-; return 0; fi  # the other one installed it
  echo "chromium.sh: installing Chromium from Debian (apt-get install chromium fonts-liberation)"
  # apt's and dpkg's chatter goes to a log, shown only when the install fails.
  local log
  log="$(mktemp -t honing-chromium-install.XXXXXX)"
  local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300)
  local install=("${apt[@]}" install --no-install-recommends chromium fonts-liberation)
  # A fresh machine has no package lists yet, or stale ones: update and try again.
  if "${install[@]}" >"$log" 2>&1 9<&- \
      || { "${apt[@]}" update >>"$log" 2>&1 9<&- && "${install[@]}" >>"$log" 2>&1 9<&-; }; then
    echo "chromium.sh: installed $(dpkg-query -W -f '${Package} ${Version}' chromium 2>/dev/null)"
    rm -f "$log"
  else
    echo "chromium.sh: apt-get could not install chromium (the browser tests will skip); the end of $log:"
    tail -n 20 "$log"
  fi
  exec 9<&-
}

# Everything but the path goes to stderr: callers capture stdout with $(...).
if ! BIN="$(find_chromium)"; then
  install_chromium >&2
  BIN="$(find_chromium || true)"
fi
if [[ -n "$BIN" ]]; then echo "$BIN"; fi
