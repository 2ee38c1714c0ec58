#!/usr/bin/env bash
# Fake cluster "status" command (see submit.sh). Usage: status.sh JOBID
# Prints running / success / failed, as snakemake-executor-plugin-cluster-generic expects.
set -euo pipefail
state="${FAKE_CLUSTER_DIR:?set FAKE_CLUSTER_DIR to the fake cluster state folder}"
id="$1"
if [ -f "$state/$id.rc" ]; then
    if [ "$(cat "$state/$id.rc")" = "0" ]; then echo success; else echo failed; fi
elif [ -f "$state/$id.pid" ] && kill -0 "$(cat "$state/$id.pid")" 2>/dev/null; then
    echo running
elif [ -f "$state/$id.pid" ]; then
    sleep 1  # the job may have just written its exit status
    if [ -f "$state/$id.rc" ] && [ "$(cat "$state/$id.rc")" = "0" ]; then echo success
    else echo failed; fi
else
    echo failed
fi
