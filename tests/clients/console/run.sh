#!/usr/bin/env bash
# Drives the operator console (/console) in a real headless browser: Debian's chromium and
# chromium-driver (installed here when missing and we are root), from Python selenium in its
# own virtualenv, against a fresh server with a data directory (for snapshots). Saves a
# screenshot of each page into docs/console/.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null
  else
    echo "the console check needs chromium and chromium-driver (apt-get install chromium chromium-driver)" >&2
    exit 1
  fi
fi

client_venv console "selenium==4.27.1"
admin_key="console-check-admin-key"
data_dir=$(mktemp -d)
start_quiver --data-dir "$data_dir"
# The server writes a last snapshot as it stops: wait for it before removing its directory.
trap 'kill "${quiver_pids[@]}" 2>/dev/null || true; wait; rm -rf "$data_dir"' EXIT
QUIVER_URL=$quiver_url QUIVER_KEY=$admin_key SCREENSHOT_DIR="$repo_root/docs/console" \
  "$venv/bin/python" "$(dirname "$0")/check_console.py"
