#!/usr/bin/env bash
# A real single-node Slurm for the Slurm executor's tests (../shared/slurm.md's measured recipe):
# Debian's slurm-wlm and munge, a controller and a compute daemon on this host, no systemd.
#
#   bash scripts/setup-slurm.sh          install if needed, configure, start (idempotent)
#   bash scripts/setup-slurm.sh stop     stop the daemons by the pids in $STATE/*.pid
#   bash scripts/setup-slurm.sh status   print sinfo's view
#
# STATE (default target/slurm) holds the controller's state, the spool, the logs and the pid
# files. Needs root (apt-get, /etc/slurm, munge). Prints "slurm: ready" when sinfo shows the node.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${S2R_SLURM_STATE:-$PWD/target/slurm}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)

stop() {
    for d in d ctld; do
        if [ -f "$STATE/$d.pid" ]; then
            pid=$(cat "$STATE/$d.pid")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            rm -f "$STATE/$d.pid"
        fi
    done
}

# Daemons of another state directory (another checkout's Slurm): this configuration replaces them.
stop_others() {
    if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
        pkill -x slurmd || true
        pkill -x slurmctld || true
        for _ in $(seq 50); do pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || break; sleep 0.1; done
    fi
}

case "${1:-start}" in
stop) stop; echo "slurm: stopped"; exit 0 ;;
status) sinfo; exit 0 ;;
start) ;;
*) echo "usage: setup-slurm.sh [start|stop|status]" >&2; exit 2 ;;
esac

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || { echo "setup-slurm: installing Slurm needs root" >&2; exit 1; }
    echo "setup-slurm: installing slurm-wlm and munge"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge) \
        >"$STATE/apt.log" 2>&1 || { tail -20 "$STATE/apt.log" >&2; exit 1; }
fi

mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge "$STATE"/{state,spool,log}
[ -f /etc/munge/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 400 /etc/munge/munge.key
if ! pgrep -x munged >/dev/null; then
    su -s /bin/sh munge -c "/usr/sbin/munged --force"
fi

H=$(hostname -s)
CPUS=$(nproc)
MEM=$(($(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 - 1024))
conf=$(
    cat <<EOF
ClusterName=local
SlurmctldHost=$H
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldLogFile=$STATE/log/ctld.log
SlurmdLogFile=$STATE/log/d.log
SlurmctldPidFile=$STATE/ctld.pid
SlurmdPidFile=$STATE/d.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$((MEM / CPUS))
ReturnToService=2
MinJobAge=300
KillWait=5
SchedulerParameters=sched_interval=1
NodeName=$H CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$H Default=YES MaxTime=INFINITE State=UP
EOF
)
mkdir -p /etc/slurm
if [ ! -f /etc/slurm/slurm.conf ] || [ "$(cat /etc/slurm/slurm.conf)" != "$conf" ]; then
    printf '%s\n' "$conf" >/etc/slurm/slurm.conf
    stop # a changed configuration needs fresh daemons
    stop_others
fi

alive() { [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }
alive ctld || stop_others
alive ctld || slurmctld
alive d || slurmd
for _ in $(seq 100); do
    if sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
        echo "slurm: ready ($H, $CPUS CPUs, ${MEM} MB; state in $STATE)"
        exit 0
    fi
    # A node left down by an earlier stop comes back.
    scontrol update nodename="$H" state=resume >/dev/null 2>&1 || true
    sleep 0.2
done
echo "setup-slurm: the node did not become idle; sinfo says:" >&2
sinfo >&2 || true
tail -20 "$STATE/log/ctld.log" "$STATE/log/d.log" >&2 || true
exit 1
