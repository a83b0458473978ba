# What scripts/demo and scripts/demo-python share; sourced by both.

# The processes a demo started (append $! after each), stopped in order.
pids=()
stop_demo_processes() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}

# wait_for_participants COUNT LOG_DIR: until the coordinator (through the
# caller's pactctl function) reaches COUNT participants; otherwise prints the
# logs in LOG_DIR and exits 1.
wait_for_participants() {
  local reachable=0
  for _ in $(seq 1 100); do
    reachable=$(pactctl participants --json 2>/dev/null | grep -o '"reachable":true' | wc -l || true)
    [ "$reachable" = "$1" ] && return 0
    sleep 0.1
  done
  echo "the service did not come up; logs:" >&2
  tail -n 20 "$2"/*.log >&2
  exit 1
}
