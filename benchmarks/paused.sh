#!/usr/bin/env bash
# Runs a command while a training run is paused, so that timings do not share the CPU with it: SIGSTOP to the
# trainer and every process under it (stopping the trainer alone leaves its data-loader workers decoding and
# augmenting for seconds to minutes), SIGCONT to all of them afterwards, also when the command fails or is
# interrupted. Exits with the command's status.
#
#     benchmarks/paused.sh PID COMMAND [ARGS...]      # PID: the trainer, e.g. $(cat run/train.pid)
set -uo pipefail
if [ $# -lt 2 ]; then
    echo "usage: benchmarks/paused.sh PID COMMAND [ARGS...]" >&2
    exit 2
fi
pid=$1
shift
if ! kill -0 "$pid" 2>/dev/null; then
    echo "benchmarks/paused.sh: no process $pid to pause" >&2
    exit 2
fi
tree() {  # the process and all its descendants
    echo "$1"
    for child in $(pgrep -P "$1"); do tree "$child"; done
}
pids=$(tree "$pid")
resume() { kill -CONT $pids 2>/dev/null; }
trap resume EXIT
kill -STOP $pids
sleep 1
"$@"
