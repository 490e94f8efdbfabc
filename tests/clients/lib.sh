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
# QUIVER_ADMIN_KEY=$admin_key and the config $quiver_config (default: the repository's), and
# sets $quiver_url. It may be called again for another server; all stop at exit.
quiver_pids=()
start_quiver() {
  local binary="$repo_root/target/debug/quiver"
  [ -x "$binary" ] || (cd "$repo_root" && cargo build --quiet --bin quiver)
  quiver_log=$(mktemp)
  quiver_out=$(mktemp)
  QUIVER_ADMIN_KEY=$admin_key QUIVER_LOG=warn "$binary" serve \
    --config "${quiver_config:-$repo_root/config.toml}" \
    --listen 127.0.0.1:0 "$@" >"$quiver_out" 2>"$quiver_log" &
  quiver_pid=$!
  quiver_pids+=("$quiver_pid")
  trap 'kill "${quiver_pids[@]}" 2>/dev/null || true' EXIT
  listening_url "$quiver_out" "$quiver_log" "$quiver_pid" && quiver_url=$listening_url
}

# listening_url OUT ERR PID [TRIES] [PAUSE] [ANNOUNCEMENT]: waits until the server whose stdout
# is the file OUT prints ANNOUNCEMENT (`quiver listening on `) followed by a URL and sets
# $listening_url; if process PID exits first, or after TRIES checks (900) PAUSE seconds apart
# (0.1: 90 s, generous for a loaded 2-core CI box), prints the file ERR and fails. Also for
# the benchmark scripts, which start their servers their own way.
listening_url() {
  local out=$1 err=$2 pid=$3 tries=${4:-900} pause=${5:-0.1} announcement=${6:-quiver listening on }
  for _ in $(seq "$tries"); do
    listening_url=$(sed -n "s/^$announcement//p" "$out" | head -n 1)
    [ -n "$listening_url" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep "$pause"
  done
  echo "quiver did not start:" >&2; cat "$err" >&2
  return 1
}
