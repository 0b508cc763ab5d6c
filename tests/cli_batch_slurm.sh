#!/usr/bin/env bash
# cli_batch_slurm: marlin-batch --slurm --submit through a real Slurm cluster
# (issue 7). The test starts a single-node cluster on this machine from
# Debian's packages (munge, slurmctld, slurmd; installed here when missing
# and we are root): its own munged on a private socket, a minimal slurm.conf
# (one node on 127.0.0.1, proctrack/linuxproc, task/none, select/cons_tres
# with CR_Core_Memory, no cgroups, no accounting) and free ports, so it
# touches no system configuration. It then runs a 3-model batch (two good
# synthetic models and one broken input) through it with the real tools,
# checks the DONE.json files, the array script, the per-task logs and the
# summary, reruns it (done models are skipped, only the broken one is
# resubmitted), and stops every daemon it started (trap EXIT), leaving no
# process behind.
#
# Where Slurm cannot start, the test says why and FAILS when CI or MARLIN_CI
# is set, and skips (77) elsewhere.
set -euo pipefail
B=${MARLIN_BINARY_DIR:?run through ctest}
name=cli_batch_slurm

in_ci() { [[ -n "${CI:-}" || -n "${MARLIN_CI:-}" ]]; }
CANNOT=0
cannot() {
  CANNOT=1
  echo "$name: Slurm cannot start here: $*" >&2
  if [[ -n "${T:-}" && -d "$T/log" ]]; then
    for f in "$T"/log/*; do
      echo "---- $f (tail)" >&2
      tail -n 20 "$f" >&2 || true
    done
  fi
  if in_ci; then
    echo "$name: FAIL (CI must run the Slurm test)" >&2
    exit 1
  fi
  echo "$name: SKIP" >&2
  exit 77
}
fail() {
  echo "$name: FAIL: $*" >&2
  exit 1
}

for t in marlin-batch marlin-quantize marlin-verify marlin-synth; do
  if [[ ! -x "$B/$t" ]]; then
    echo "$name: SKIP: $B/$t is not built" >&2
    exit 77
  fi
done

# ------------------------------------------------------------- packages
need_pkgs=()
command -v munged >/dev/null || need_pkgs+=(munge)
command -v slurmctld >/dev/null || need_pkgs+=(slurmctld)
command -v slurmd >/dev/null || need_pkgs+=(slurmd)
command -v sbatch >/dev/null || need_pkgs+=(slurm-client)
if ((${#need_pkgs[@]})); then
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    cannot "missing ${need_pkgs[*]} and not root with apt-get to install them"
  fi
  echo "$name: installing ${need_pkgs[*]} (Debian packages)" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null ||
      cannot "apt-get install ${need_pkgs[*]} failed"
  fi
fi
[[ $(id -u) -eq 0 ]] || cannot "slurmd must run as root (it starts jobs as their user)"

# ------------------------------------------------------------- cluster
T=$(mktemp -d /tmp/marlin-slurm.XXXXXX)
chmod 755 "$T"
PIDS=()   # daemons we started, stopped in reverse order

# Our slurmstepd processes: those holding a file of our folder open (each
# writes to our slurmd log), so another cluster's steps are never touched.
our_stepds() {
  local p out=
  for p in $(pgrep -x slurmstepd || true); do
    find "/proc/$p/fd" -maxdepth 1 -lname "$T/*" 2>/dev/null | grep -q . && out+=" $p"
  done
  echo $out
}
# Our processes still alive (zombies have ended: their new parent reaps
# them): what runs from our folder (daemons, job processes) and our stepds.
ours() {
  local p st out=
  for p in $(pgrep -f "$T" || true) $(our_stepds); do
    st=$(ps -o stat= -p "$p" 2>/dev/null) || continue
    [[ $st == Z* ]] || out+=" $p"
  done
  echo $out
}

stop_all() {
  local rc=$? i left
  if [[ -n "${SLURM_CONF:-}" ]] && ((${#PIDS[@]} >= 2)); then
    # Jobs first, and let their slurmstepd finish talking to slurmd: a
    # stepd whose slurmd is gone lingers.
    timeout 10 scancel --full --quiet --partition=marlin 2>/dev/null || true
    for _ in $(seq 100); do
      [[ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" && -z "$(our_stepds)" ]] && break
      sleep 0.2
    done
  fi
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill "${PIDS[i]}" 2>/dev/null || true
  done
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    for _ in $(seq 50); do
      kill -0 "${PIDS[i]}" 2>/dev/null || break
      sleep 0.2
    done
    kill -9 "${PIDS[i]}" 2>/dev/null || true
    wait "${PIDS[i]}" 2>/dev/null || true
  done
  # Anything of ours still there after a grace period was left behind:
  # report it, end it, fail.
  for _ in $(seq 50); do
    left=$(ours)
    [[ -z $left ]] && break
    sleep 0.2
  done
  if [[ -n "$left" ]]; then
    echo "$name: processes left behind, killing: $(ps -o pid=,args= -p "${left// /,}" || true)" >&2
    kill -9 $left 2>/dev/null || true
    ((rc == 0)) && rc=1
  fi
  if ((rc != 0 && rc != 77 && ! CANNOT)) && [[ -d "$T/log" ]]; then
    for f in "$T"/log/*.log; do
      echo "---- $f (tail)" >&2
      tail -n 20 "$f" >&2 || true
    done
  fi
  rm -rf "$T"
  exit "$rc"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

mkdir -p "$T/munge" "$T/state" "$T/spool" "$T/log"
chmod 700 "$T/munge"
head -c 1024 /dev/urandom >"$T/munge/munge.key"
chmod 400 "$T/munge/munge.key"
munged --foreground --force --socket="$T/munge/munge.sock" --key-file="$T/munge/munge.key" \
  --pid-file="$T/munge/munged.pid" --seed-file="$T/munge/seed" \
  --log-file="$T/log/munged.log" >>"$T/log/munged.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [[ -S "$T/munge/munge.sock" ]] && break; sleep 0.1; done
munge -S "$T/munge/munge.sock" -n | unmunge -S "$T/munge/munge.sock" >/dev/null 2>&1 ||
  cannot "munged did not start"

# Two free TCP ports (bound and released just before use).
read -r PCTL PD < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(awk '/MemAvailable/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
cat >"$T/slurm.conf" <<EOF
ClusterName=marlintest
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$PCTL
SlurmdPort=$PD
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge/munge.sock
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.log
PlugStackConfig=/dev/null
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=600
NodeName=marlin-node NodeHostname=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=marlin Nodes=marlin-node Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$T/slurm.conf
slurmctld -D -f "$SLURM_CONF" >>"$T/log/slurmctld.out" 2>&1 &
PIDS+=($!)
slurmd -D -N marlin-node -f "$SLURM_CONF" >>"$T/log/slurmd.out" 2>&1 &
PIDS+=($!)
state=
for _ in $(seq 150); do
  state=$(timeout 5 sinfo -h -n marlin-node -o %T 2>/dev/null || true)
  [[ $state == idle ]] && break
  sleep 0.2
done
[[ $state == idle ]] || cannot "node marlin-node is '${state:-unknown}', not idle after 30 s"
echo "$name: Slurm $(sinfo -V | awk '{print $2}') up: node marlin-node idle, $CPUS CPUs, $MEM MiB"

# ------------------------------------------------------------- models
mkdir -p "$T/m"
"$B/marlin-synth" "$T/m/alpha" --preset tiny --seed 1 >/dev/null
"$B/marlin-synth" "$T/m/beta" --preset tiny --seed 2 --dtype bf16 >/dev/null
# The broken input: alpha with its weights file cut short (the header
# promises more bytes than the file has; marlin-quantize must refuse it).
cp -r "$T/m/alpha" "$T/m/broken"
shard=$(ls "$T/m/broken"/*.safetensors | head -n 1)
truncate -s $(($(stat -c %s "$shard") - 4096)) "$shard"
printf '# three models, one broken\nalpha\tm/alpha\t--method rtn\nbeta\tm/beta\t--method rtn --group-size 64\nbroken\tm/broken\t--method rtn\n' >"$T/manifest.tsv"

O=$T/out
export MARLIN_BATCH_POLL=1
set +e
"$B/marlin-batch" "$T/manifest.tsv" "$O" --slurm --submit --cpus-per-task 1 >"$T/run1.out" 2>"$T/run1.err"
rc=$?
set -e
cat "$T/run1.out"
[[ $rc -eq 1 ]] || { cat "$T/run1.err" >&2; fail "first run: exit $rc, expected 1 (broken model)"; }

# The array script: one task per model, resources from the estimate/flags.
S=$O/marlin-batch.sbatch
grep -q '^#SBATCH --array=0-2$' "$S" || fail "array script lacks --array=0-2"
grep -q '^#SBATCH --cpus-per-task=1$' "$S" || fail "array script lacks --cpus-per-task=1"
grep -Eq '^#SBATCH --mem=[0-9]+M$' "$S" || fail "array script lacks --mem"
grep -q '^#SBATCH --output=.*/logs/slurm-%A_%a.log$' "$S" || fail "array script lacks a per-task log"
job=$(sed -n 's/.*submitted job array \([0-9]*\).*/\1/p' "$T/run1.err")
[[ -n $job ]] || fail "no job id in the progress output"
for i in 0 1 2; do
  [[ -s "$O/logs/slurm-${job}_$i.log" ]] || fail "no log for array task $i"
done

# Summary on stdout and in batch.json; DONE.json files match the outputs.
grep -Eq '^alpha +ok ' "$T/run1.out" || fail "alpha not ok in the summary"
grep -Eq '^beta +ok ' "$T/run1.out" || fail "beta not ok in the summary"
grep -Eq '^broken +failed ' "$T/run1.out" || fail "broken not failed in the summary"
[[ ! -e "$O/broken/DONE.json" ]] || fail "broken model has a DONE.json"
python3 - "$O" "$job" <<'EOF'
import hashlib, json, os, sys
out, job = sys.argv[1], sys.argv[2]
b = json.load(open(os.path.join(out, "batch.json")))
assert b["mode"] == "slurm" and b["slurm_job"] == job and b["ok"] is False, b
st = {m["id"]: m for m in b["models"]}
assert st["alpha"]["status"] == "ok" and st["beta"]["status"] == "ok", st
assert st["broken"]["status"] == "failed" and "marlin-quantize" in st["broken"]["error"], st
for mid in ("alpha", "beta"):
    d = json.load(open(os.path.join(out, mid, "DONE.json")))
    assert d["id"] == mid and d["slurm_job"].startswith(job + "_"), d
    assert d["verify"]["cpu"] == "pass", d["verify"]
    assert 0 < d["max_rel_weight_err"] < 0.5, d["max_rel_weight_err"]
    assert st[mid]["max_rel_weight_err"] == d["max_rel_weight_err"]
    names = set()
    for o in d["outputs"]:
        p = os.path.join(out, mid, o["name"])
        assert hashlib.sha256(open(p, "rb").read()).hexdigest() == o["sha256"], p
        names.add(o["name"])
    assert "quantize-report.json" in names and "config.json" in names, names
    assert any(n.endswith(".safetensors") for n in names), names
print("cli_batch_slurm: DONE.json files, batch.json and sha256 checked")
EOF

# Rerun: the done models are skipped; only the broken one is resubmitted.
set +e
"$B/marlin-batch" "$T/manifest.tsv" "$O" --slurm --submit --cpus-per-task 1 >"$T/run2.out" 2>"$T/run2.err"
rc=$?
set -e
cat "$T/run2.out"
[[ $rc -eq 1 ]] || { cat "$T/run2.err" >&2; fail "rerun: exit $rc, expected 1"; }
grep -Eq '^alpha +skipped ' "$T/run2.out" || fail "alpha not skipped on the rerun"
grep -Eq '^beta +skipped ' "$T/run2.out" || fail "beta not skipped on the rerun"
grep -Eq '^broken +failed ' "$T/run2.out" || fail "broken not failed on the rerun"
grep -q '^#SBATCH --array=0-0$' "$S" || fail "rerun array is not the broken model alone"

# Without the broken model there is nothing left to submit: exit 0.
grep -v '^broken' "$T/manifest.tsv" >"$T/good.tsv"
"$B/marlin-batch" "$T/good.tsv" "$O" --slurm --submit --cpus-per-task 1 >"$T/run3.out" 2>"$T/run3.err" ||
  fail "all-done rerun failed: $(cat "$T/run3.err")"
grep -q 'nothing to convert' "$T/run3.err" || fail "all-done rerun submitted something"

# Ctrl-C while waiting cancels the array: the tasks stop (their tools too),
# no DONE.json is written, the exit code is 130. A wrapper before the real
# marlin-verify holds the tasks in verification until then.
W=$T/wrap
mkdir -p "$W"
ln -s "$B/marlin-quantize" "$W/marlin-quantize"
cat >"$W/marlin-verify" <<EOF
#!/bin/bash
case "\$1" in --version|--gpu-available) exec "$B/marlin-verify" "\$@";; esac
sleep 300 &
echo \$! >>"$T/sleep.pid"
wait
exec "$B/marlin-verify" "\$@"
EOF
chmod +x "$W/marlin-verify"
MARLIN_BIN_DIR=$W "$B/marlin-batch" "$T/good.tsv" "$T/out-int" --slurm --submit --cpus-per-task 1 \
  >"$T/int.out" 2>"$T/int.err" &
bpid=$!
for _ in $(seq 600); do [[ -s "$T/sleep.pid" ]] && break; sleep 0.1; done
[[ -s "$T/sleep.pid" ]] || { cat "$T/int.err" >&2; fail "no task reached verification"; }
kill -INT "$bpid"
rc=0
wait "$bpid" || rc=$?
[[ $rc -eq 130 ]] || { cat "$T/int.out" "$T/int.err" >&2; fail "Ctrl-C while waiting: exit $rc, expected 130"; }
grep -q 'cancelling job' "$T/int.err" || fail "the array was not cancelled"
grep -Eq '^(alpha|beta) +interrupted ' "$T/int.out" || { cat "$T/int.out" >&2; fail "no task reported interrupted"; }
[[ -z "$(squeue -h -o %i)" ]] || fail "jobs still queued after Ctrl-C: $(squeue -h)"
for p in $(cat "$T/sleep.pid"); do
  st=$(ps -o stat= -p "$p" 2>/dev/null || true)
  [[ -z $st || $st == Z* ]] || fail "a task's process ($p) survived the cancel"
done
for id in alpha beta; do
  [[ ! -e "$T/out-int/$id/DONE.json" ]] || fail "$id got a DONE.json although cancelled"
done
echo "$name: PASS (job $job)"
