#!/usr/bin/env bash
# Runs schemathesis (from PyPI) against a fresh demo server's GET /openapi.json, as the admin:
# every documented operation with generated valid and invalid requests, a bounded number a
# route (about three minutes in all on two cores). It fails on any 5xx, and on any answer
# whose status, media type or body the document does not describe.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

client_venv schemathesis "schemathesis==4.32.5"
admin_key="schemathesis-check-admin-key"
start_quiver
report_dir=$(mktemp -d)
trap 'kill "${quiver_pids[@]}" 2>/dev/null || true; rm -rf "$report_dir"' EXIT
SCHEMATHESIS_HOOKS="$(dirname "$0")/hooks.py" "$venv/bin/schemathesis" --config-file "$(dirname "$0")/schemathesis.toml" --no-color \
  run "$quiver_url/openapi.json" \
  --url "$quiver_url" \
  --header "Authorization: Tecton-key $admin_key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-10}" \
  --seed 15 \
  --workers 1 \
  --report-dir "$report_dir"
