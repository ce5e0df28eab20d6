#!/usr/bin/env bash
# Render a goodfit report.html in headless Chromium, save a screenshot, and fail on any
# console error or failed (network) resource load.
#
# Usage: scripts/screenshot_report.sh REPORT.html [SCREENSHOT.png] [WIDTH,HEIGHT]
#   SCREENSHOT defaults to REPORT's folder/report.png; window size defaults to 1280,4000.
#
# Chromium comes from Debian's packages and is installed here when missing (needs root or sudo);
# it is not part of goodfit's default set-up.
# Exit status: 0 rendered cleanly; 1 console errors / blocked resources / no screenshot;
# 2 bad usage or chromium unavailable.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 3 ]]; then
  echo "usage: $0 REPORT.html [SCREENSHOT.png] [WIDTH,HEIGHT]" >&2
  exit 2
fi
report=$(realpath "$1")
if [[ ! -f "$report" ]]; then
  echo "error: report not found: $1" >&2
  exit 2
fi
shot=$(realpath -m "${2:-$(dirname "$report")/report.png}")
size="${3:-1280,4000}"

find_chromium() {
  command -v chromium || command -v chromium-browser || command -v google-chrome || true
}
browser=$(find_chromium)
if [[ -z "$browser" ]]; then
  echo "chromium not found: installing Debian's chromium package" >&2
  sudo_cmd=""
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq chromium >/dev/null
  browser=$(find_chromium)
  if [[ -z "$browser" ]]; then
    echo "error: chromium could not be installed" >&2
    exit 2
  fi
fi

profile=$(mktemp -d)
log=$(mktemp)
dom=$(mktemp)
cleanup() { rm -rf "$profile" "$log" "$dom"; }
trap cleanup EXIT

common=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
  --disable-background-networking --disable-component-update --disable-sync
  --disable-dev-shm-usage --hide-scrollbars --user-data-dir="$profile"
  --enable-logging=stderr --v=0 --virtual-time-budget=5000)

rm -f "$shot"
# 1) screenshot; console messages and network errors go to stderr (--enable-logging=stderr)
timeout 120 "$browser" "${common[@]}" --window-size="$size" --screenshot="$shot" \
  "file://$report" 2>"$log" >/dev/null || true
# 2) DOM dump: checks the page parsed and rendered its content
timeout 120 "$browser" "${common[@]}" --dump-dom "file://$report" 2>>"$log" >"$dom" || true

status=0
if [[ ! -s "$shot" ]]; then
  echo "error: no screenshot written to $shot" >&2
  status=1
fi
if ! grep -q "</html>" "$dom"; then
  echo "error: --dump-dom returned no document" >&2
  status=1
fi
# Console output from the page: headless Chromium logs every console message and uncaught
# exception as "INFO:CONSOLE(...)" whatever its level, and the report has no script at all,
# so any CONSOLE line is an error; so are failed resource loads.
if grep -E "CONSOLE|Uncaught|Failed to load resource|net::ERR_" "$log" >"${log}.err"; then
  echo "error: console errors while rendering $report:" >&2
  cat "${log}.err" >&2
  status=1
fi
# External resources (the report must open from disk with no network): any src/href/url()
# in the rendered DOM that is not a data: URI or an in-page anchor.
if grep -o -i -E "(src|href)=[\"']?[^\"' >]+|url\([^)]*\)" "$dom" \
  | grep -v -i -E "^(src|href)=[\"']?(data:|#)|^url\([\"']?data:" >"${log}.ext"; then
  echo "error: external resources referenced by $report:" >&2
  sort -u "${log}.ext" | head -20 >&2
  status=1
fi
rm -f "${log}.ext"
rm -f "${log}.err"
if [[ $status -eq 0 ]]; then
  echo "ok: rendered $report -> $shot (no console errors)"
fi
exit $status
