#!/usr/bin/env bash
# Feature logging, end to end: a copy of the demo whose user_risk_service logs at sample rate
# 1.0, requests through Tecton's real client (tecton-client from PyPI), a graceful stop (SIGTERM
# completes the Parquet files), then pyarrow and pandas read the files and find exactly what the
# client was served, in order.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"

client_venv feature_log "tecton-client==0.4.0" pyarrow pandas
admin_key="feature-log-check-key"
work=$(mktemp -d)
cp -r "$repo_root/features" "$repo_root/config.toml" "$work/"
"$venv/bin/python" "$here/check_feature_log.py" configure "$work/features/prod/services.toml"
quiver_config="$work/config.toml" start_quiver --data-dir "$work/data"
QUIVER_URL=$quiver_url QUIVER_KEY=$admin_key "$venv/bin/python" "$here/check_feature_log.py" serve "$work/served.json"
kill -TERM "$quiver_pid"
wait "$quiver_pid"
"$venv/bin/python" "$here/check_feature_log.py" verify "$work/served.json" "$work/data/feature_log/prod/user_risk_service"
rm -rf "$work"
