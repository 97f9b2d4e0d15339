#!/usr/bin/env bash
# Runs Eddy's whole test suite: unit, property and multi-node tests.
# Installs cargo-nextest first when the machine lacks it; extra arguments
# go to `cargo nextest run` (a test name filter, --no-capture, --locked).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "cargo-nextest is missing; installing it (once)" >&2
  cargo install cargo-nextest --locked
fi
exec cargo nextest run --workspace "$@"
