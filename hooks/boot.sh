#!/bin/sh
# Sample boot hook: trusted set-up that runs once per supervisor start, unsandboxed, with
# the supervisor's user and capabilities, before the sandboxed agent starts. A non-zero exit
# fails startup. Here: prepare the workspace for the agent's user and record the boot.
set -eu
workspace="${OPENSHELL_WORKSPACE:-/sandbox}"
mkdir -p "$workspace"
if [ -n "${OPENSHELL_AGENT_USER:-}" ]; then
    chown "$OPENSHELL_AGENT_USER" "$workspace"
fi
# One line per boot: operators (and the tests) can count boots on the volume.
echo "boot $(date -u +%Y-%m-%dT%H:%M:%SZ) pid=$$" >> "$workspace/.boot.log"
echo "boot hook: workspace $workspace ready"
