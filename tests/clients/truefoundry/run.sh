#!/usr/bin/env bash
# Drives TrueFoundry's real Python SDK (truefoundry-sdk from PyPI) against a fresh Quiver server.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

client_venv truefoundry "truefoundry-sdk==0.6.0"
admin_key="truefoundry-check-admin-key"
start_quiver
QUIVER_URL=$quiver_url QUIVER_KEY=$admin_key "$venv/bin/python" "$(dirname "$0")/check_secret_groups.py"
