#!/usr/bin/env bash
# Fake cluster "cancel" command (see submit.sh). Usage: cancel.sh JOBID...
# Kills each job's process group (the job runs in its own session, group id = its pid).
state="${FAKE_CLUSTER_DIR:?set FAKE_CLUSTER_DIR to the fake cluster state folder}"
for id in "$@"; do
    if [ -f "$state/$id.pid" ]; then kill -TERM -- "-$(cat "$state/$id.pid")" 2>/dev/null || true; fi
done
