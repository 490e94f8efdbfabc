#!/usr/bin/env bash
# Drives Tecton's own SDK and CLI (tecton from PyPI) against a fresh Quiver server through
# `/api/proxy`. pyarrow and pandas are pinned because a fresh install otherwise fails to import
# with the numpy that tecton pins.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

client_venv tecton-sdk "tecton==1.2.13" "pyarrow<19" "pandas<2.3"
admin_key="tecton-sdk-check-admin-key"
start_quiver
QUIVER_URL=$quiver_url QUIVER_KEY=$admin_key TECTON_CLI="$venv/bin/tecton" \
  "$venv/bin/python" "$(dirname "$0")/check_sdk_and_cli.py"
