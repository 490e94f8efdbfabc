#!/usr/bin/env bash
# A profile-guided build of `quiver` (PGO), for measuring what it would gain; the README's
# `cargo run --release` does not use it. Three steps, ~15 min on two cores:
#   1. an instrumented release build (target/pgo-generate);
#   2. training: that build serves the demo config while `quiver bench --url` runs its
#      default workloads against it (single and batch GetFeatures on both demo services,
#      /ingest, the bulk loader); the client is the plain release binary, built first, so
#      its own code adds no counts; SIGTERM, and the server's counts are written at exit;
#   3. a release build optimised with the merged counts (target/pgo-use/release/quiver).
#   bash benches/pgo/build.sh        (SECONDS_PER_ROUND, default 4)
# Needs llvm-profdata of the toolchain's LLVM: `rustup component add llvm-tools-preview`.
set -euo pipefail
source "$(dirname "$0")/../../tests/clients/lib.sh"
cd "$repo_root"
seconds=${SECONDS_PER_ROUND:-4}
rustup component add llvm-tools-preview >/dev/null 2>&1 || true
profdata=$(find "$(rustc --print sysroot)" -name llvm-profdata -type f | head -n 1)
[ -x "$profdata" ] || { echo "llvm-profdata not found (rustup component add llvm-tools-preview)" >&2; exit 1; }
work=$(mktemp -d)
server_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"' EXIT

cargo build --release --bin quiver
CARGO_TARGET_DIR=target/pgo-generate RUSTFLAGS="-Cprofile-generate=$work/unused" \
  cargo build --release --bin quiver

# The server's counts go to one file; the build scripts' went to $work/unused.
LLVM_PROFILE_FILE="$work/server-%p.profraw" QUIVER_ADMIN_KEY=bench-key QUIVER_LOG=warn \
  target/pgo-generate/release/quiver serve --config config.toml --listen 127.0.0.1:0 \
  >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
listening_url "$work/server.out" "$work/server.err" "$server_pid"
target/release/quiver bench --config config.toml --url "$listening_url" --api-key bench-key \
  --rounds 1 --seconds "$seconds" --warmup-seconds 1 --rate 5000 >"$work/training.txt" 2>&1
kill -TERM "$server_pid"
wait "$server_pid" || true
server_pid=
"$profdata" merge -o "$work/quiver.profdata" "$work"/server-*.profraw

CARGO_TARGET_DIR=target/pgo-use RUSTFLAGS="-Cprofile-use=$work/quiver.profdata" \
  cargo build --release --bin quiver
echo "profile-guided build: target/pgo-use/release/quiver"
