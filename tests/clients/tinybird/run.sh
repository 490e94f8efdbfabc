#!/usr/bin/env bash
# Drives a real Tinybird client (verdin, LocalStack's, from PyPI) against a fresh Quiver server.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

client_venv tinybird "verdin==0.5.3" "requests"
admin_key="tinybird-check-admin-key"
start_quiver
QUIVER_URL=$quiver_url QUIVER_KEY=$admin_key "$venv/bin/python" "$(dirname "$0")/check_variables.py"
