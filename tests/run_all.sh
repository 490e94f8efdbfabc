#!/usr/bin/env bash
# The test command: every Rust test, then the checks that drive real vendor clients from PyPI
# against a freshly built server (each client in its own virtualenv, created on first use).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test
cargo build --bin quiver
for check in tests/clients/*/run.sh; do
  [ -e "$check" ] || continue
  echo "== $check"
  bash "$check"
done
