#!/usr/bin/env bash
# Drives Tecton's real Python client (tecton-client from PyPI) against a fresh Quiver server.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

client_venv tecton "tecton-client==0.4.0"
admin_key="tecton-client-check-key"
start_quiver
QUIVER_URL=$quiver_url QUIVER_KEY=$admin_key "$venv/bin/python" "$(dirname "$0")/check_feature_service.py"
