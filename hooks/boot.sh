#!/bin/sh
# Sample boot hook: trusted set-up that runs once per supervisor start, unsandboxed, as the
# supervisor's user, before the sandboxed agent starts. A non-zero exit fails startup.
set -eu
workspace="${OPENSHELL_WORKSPACE:-/sandbox}"
mkdir -p "$workspace"
# Leave a trace the agent (and the tests) can see: one line per boot.
echo "boot $(date -u +%Y-%m-%dT%H:%M:%SZ) pid=$$" >> "$workspace/.boot.log"
echo "boot hook: workspace $workspace ready"
