#!/usr/bin/env bash
# The demo: the supervisor runs the sample agent (hooks/agent.sh) with the sample boot hook
# (hooks/boot.sh), confined by a demo policy, directly on this host. It walks through
# Booting → Ready, a crash and restart, and a graceful stop, printing the phase as it goes.
#   bash hooks/demo.sh             scripted tour, about 10 seconds
#   DEMO_INTERACTIVE=1 bash hooks/demo.sh   run until Ctrl-C
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

echo "==> building the supervisor (release, static)"
cargo build --release --quiet --bin supervisor
sup="$repo/target/x86_64-unknown-linux-gnu/release/supervisor"

demo=$(mktemp -d /tmp/openshell-demo.XXXXXX)
chmod 755 "$demo"
trap 'rm -rf "$demo"' EXIT
workspace="$demo/sandbox"
status_dir="$demo/status"
agent_user=nobody
agent_group=nogroup
getent group "$agent_group" >/dev/null || agent_group=nobody

# The agent may read the system and its own script, and write only its workspace.
cat > "$demo/policy.yaml" <<YAML
version: 1
filesystem_policy:
  include_workdir: false
  read_only: [/usr, /bin, /lib, /lib64, /etc, /proc, /dev/urandom, $repo/hooks]
  read_write: [$workspace, /dev/null]
landlock:
  compatibility: best_effort
process:
  run_as_user: $agent_user
  run_as_group: $agent_group
YAML

export OPENSHELL_WORKSPACE="$workspace" OPENSHELL_AGENT_USER="$agent_user"
# The agent reads OPENSHELL_WORKSPACE; the child gets only an allow-list of variables.
args=(--hook "$repo/hooks/boot.sh" --policy "$demo/policy.yaml" --status-dir "$status_dir"
      --child-env OPENSHELL_WORKSPACE
      --log-format text --ready-after 1s --backoff-initial 500ms)

if [[ -n "${DEMO_INTERACTIVE:-}" ]]; then
    echo "==> running until Ctrl-C (status: $sup status --status-dir $status_dir)"
    cd "$demo" && exec "$sup" "${args[@]}" -- "$repo/hooks/agent.sh"
fi

phase() { "$sup" status --status-dir "$status_dir" 2>/dev/null || true; }
wait_phase() {
    for _ in $(seq 100); do [[ "$(phase)" == "$1"* ]] && return 0; sleep 0.1; done
    echo "demo: phase $1 not reached (now: $(phase))" >&2; return 1
}

echo "==> starting: $sup ${args[*]} -- hooks/agent.sh"
(cd "$demo" && exec "$sup" "${args[@]}" -- "$repo/hooks/agent.sh") &
pid=$!
wait_phase Ready
echo "==> phase: $(phase)"
sleep 1.5
echo "==> workspace: $(cat "$workspace/heartbeat"), boots: $(wc -l < "$workspace/.boot.log")"

echo "==> killing the agent to show a restart with backoff"
child=$(cat "/proc/$pid/task/$pid/children")
kill -KILL $child
wait_phase BackOff || true
echo "==> phase: $(phase)"
wait_phase Ready
echo "==> phase: $(phase) (restarts: $("$sup" status --json --status-dir "$status_dir" | grep -o '"restarts": [0-9]*' | grep -o '[0-9]*$'))"

echo "==> SIGTERM to the supervisor: graceful stop"
kill -TERM "$pid"
code=0; wait "$pid" || code=$?
echo "==> supervisor exited with $code; phase: $(phase)"
