#!/usr/bin/env bash
# Drives Tecton's real Python client (tecton-client from PyPI) against a fresh Quiver server.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

client_venv tecton "tecton-client==0.4.0"
admin_key="tecton-client-check-key"
start_quiver
url=$quiver_url
# A second server whose store may return only 100 bytes a request (response-size limit checks).
quiver_config=$(mktemp --suffix=.toml)
sed -e 's/^max_store_response_bytes = .*/max_store_response_bytes = 100/' \
  -e "s|\"features/|\"$repo_root/features/|" "$repo_root/config.toml" >"$quiver_config"
start_quiver
QUIVER_URL=$url QUIVER_SIZE_LIMITED_URL=$quiver_url QUIVER_KEY=$admin_key \
  "$venv/bin/python" "$(dirname "$0")/check_feature_service.py"
rm -f "$quiver_config"
