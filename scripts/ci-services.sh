#!/usr/bin/env bash
# Installs and starts the services the test suites use, from Debian's packages. Idempotent.
set -uo pipefail
need=()
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
echo "services ready"
