#!/usr/bin/env bash
# Runs every ringmq test. Needs only a Rust toolchain: anything else the tests use is
# installed here first, so this passes on a fresh Linux machine.
set -euo pipefail
cd "$(dirname "$0")/.."

# Unit, property, table, fixture and black-box tests of every workspace crate, plus the
# benches compiled and run once each in test mode (so they cannot rot).
cargo test --workspace --all-targets
cargo test --workspace --doc
