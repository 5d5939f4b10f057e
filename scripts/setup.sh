#!/usr/bin/env bash
# One-time set-up on a fresh Debian machine: system packages, npm dependencies, native + TS build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
npm ci --no-audit --no-fund
npm run build
