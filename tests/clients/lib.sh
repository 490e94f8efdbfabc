#!/usr/bin/env bash
# Shared by the client checks: a virtualenv per client, and a Quiver server on a free port.
# Source it, then call `client_venv NAME PACKAGES...` and `start_quiver`; the server is stopped
# when the calling script exits.

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# client_venv NAME PACKAGE...: creates tests/clients/.venv-NAME once and installs the packages.
client_venv() {
  local name=$1; shift
  venv="$repo_root/tests/clients/.venv-$name"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || { echo "python3 -m venv failed (install python3-venv)" >&2; return 1; }
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$@"
}

# start_quiver [extra serve args...]: starts target/debug/quiver on 127.0.0.1:0 with
# QUIVER_ADMIN_KEY=$admin_key (and --config $quiver_config, the repository's config.toml by
# default) and sets $quiver_url.
start_quiver() {
  local binary="$repo_root/target/debug/quiver"
  [ -x "$binary" ] || (cd "$repo_root" && cargo build --quiet --bin quiver)
  quiver_log=$(mktemp)
  quiver_out=$(mktemp)
  QUIVER_ADMIN_KEY=$admin_key QUIVER_LOG=warn "$binary" serve --config "${quiver_config:-$repo_root/config.toml}" \
    --listen 127.0.0.1:0 "$@" >"$quiver_out" 2>"$quiver_log" &
  quiver_pid=$!
  trap 'kill $quiver_pid 2>/dev/null || true' EXIT
  for _ in $(seq 300); do
    quiver_url=$(sed -n 's/^quiver listening on //p' "$quiver_out" | head -n 1)
    [ -n "$quiver_url" ] && return 0
    kill -0 $quiver_pid 2>/dev/null || break
    sleep 0.1
  done
  echo "quiver did not start:" >&2; cat "$quiver_log" >&2
  return 1
}
