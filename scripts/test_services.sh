#!/usr/bin/env bash
# Start the servers the test suite needs, on loopback only, and write their addresses to
# $SEA_HOME/test-services.env. Safe to run again: it reuses what is already running.
set -euo pipefail
: "${SEA_HOME:=$PWD/.sea}"
mkdir -p "$SEA_HOME"
env_file="$SEA_HOME/test-services.env"
: > "$env_file"
# (services are added here as tests need them)
echo "test services ready ($env_file)"
