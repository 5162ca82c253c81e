#!/bin/sh
# Sample long-lived agent for the demo: works in its workspace, shows what the sandbox
# denies it, and shuts down cleanly on SIGTERM.
workspace="${OPENSHELL_WORKSPACE:-/sandbox}"
trap 'echo "agent: SIGTERM received, saving state and exiting"; exit 0' TERM INT

echo "agent: running as $(id -un 2>/dev/null || id -u) in $(pwd)"
if { echo escape > /etc/openshell-demo-escape; } 2>/dev/null; then
    echo "agent: wrote /etc/openshell-demo-escape (NOT sandboxed)"
else
    echo "agent: writing /etc/openshell-demo-escape was denied (sandboxed)"
fi
n=0
while :; do
    n=$((n + 1))
    echo "heartbeat $n $(date -u +%H:%M:%S)" > "$workspace/heartbeat"
    sleep 1 &
    wait $!   # wait, not sleep: lets the TERM trap run at once
done
