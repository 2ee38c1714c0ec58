#!/usr/bin/env bash
# Fake cluster "submit" command for snakemake-executor-plugin-cluster-generic (used by
# tests/workflow/test_cluster.py). Usage: submit.sh JOBSCRIPT
#
# Launches the job script as a detached background process in a fresh session, with a
# scrubbed environment (only PATH, HOME, LANG and PYTHONPATH) and its own working temp dir, so
# the job shares nothing with the submitting Snakemake process but the file system, as on a
# real cluster. Prints the job id (the only stdout line), as sbatch --parsable would.
# State lives in $FAKE_CLUSTER_DIR: <id>.sh (copy of the job script), <id>.log, <id>.rc
# (exit status, written when the job ends), <id>.pid.
set -euo pipefail
jobscript="$1"
state="${FAKE_CLUSTER_DIR:?set FAKE_CLUSTER_DIR to the fake cluster state folder}"
mkdir -p "$state"
id="job$(date +%s%N)$RANDOM"
cp "$jobscript" "$state/$id.sh"
mkdir -p "$state/$id.tmp"
setsid env -i PATH="$PATH" HOME="${HOME:-/tmp}" LANG="${LANG:-C.UTF-8}" \
    PYTHONPATH="${PYTHONPATH:-}" TMPDIR="$state/$id.tmp" \
    bash -c 'bash "$1" > "$2.log" 2>&1; echo $? > "$2.rc.tmp"; mv "$2.rc.tmp" "$2.rc"' \
    _ "$state/$id.sh" "$state/$id" < /dev/null > /dev/null 2>&1 &
echo $! > "$state/$id.pid"
echo "$id"
