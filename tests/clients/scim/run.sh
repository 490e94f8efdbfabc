#!/usr/bin/env bash
# Runs the SCIM compliance checker scim2-tester (PyPI) against a fresh Quiver server.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

client_venv scim "scim2-tester==0.5.2" "scim2-client==0.13.2" "scim2-models==0.12.3" "scim2-cli==0.6.0"
admin_key="scim-check-admin-key"
start_quiver
QUIVER_URL=$quiver_url QUIVER_KEY=$admin_key "$venv/bin/python" "$(dirname "$0")/check_scim.py"
