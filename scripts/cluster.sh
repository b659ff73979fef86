#!/usr/bin/env bash
# cluster.sh: start (or stop) a private PostgreSQL server and a one-node Slurm
# cluster with 4 fake GPUs, by hand and without systemd, so that the
# end-to-end tests can run against them (in CI and on a developer's machine).
#
# Usage (as root, on Debian 12 "bookworm"):
#   bash scripts/cluster.sh start DIR   # install what is missing, start all, write DIR/env.sh
#   source DIR/env.sh                   # exports SWEEP_TEST_PG, SLURM_CONF, SWEEP_TEST_SLURM
#   bash scripts/cluster.sh stop DIR    # stop every daemon started under DIR
#
# Everything lives under DIR (created if missing):
#   DIR/env.sh                  what the tests source
#   DIR/pg/data, DIR/pg/socket  PostgreSQL's data and its unix socket; its log is DIR/pg/postgres.log
#   DIR/munge/                  munged's key, seed, socket, pid file and log (munged.out)
#   DIR/slurm/                  slurm.conf, gres.conf, state, spool, logs and pid files
#   DIR/dev/nvidia0..3          the fake GPUs (character devices)
#   DIR/run/*.pid               the pids of the daemons this script started
#
# PostgreSQL listens on 127.0.0.1 on the first free port from 55432 and on a
# socket in DIR/pg/socket, with trust authentication; role `sweep` (a
# superuser) owns database `sweep_test`.  It is tuned for speed, not safety
# (fsync=off and friends): it is a throwaway test server.
#
# Slurm (22.05 in bookworm) runs slurmctld and slurmd as root on private ports
# (the first free pair from 46817/46818), reading DIR/slurm/slurm.conf through
# SLURM_CONF, with no cgroups and no accounting.  The node declares at least 8
# CPUs (whatever the machine has) and gpu:4, so that four 1-CPU tasks with
# --gres=gpu:1 run at once even on a 2-core box; each such task gets
# CUDA_VISIBLE_DEVICES set to its one GPU.  AuthInfo's cred_expire is 10 s, so
# a requeued job may start again ~11 s after the requeue (Slurm's default: 121 s),
# and the scheduler looks every 5 s.  Beware: the last task of an array carries
# the array's own job id, so inside it `scontrol requeue $SLURM_JOB_ID` requeues
# the whole array; name one task as ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}.
#
# `start` is idempotent-ish: if the daemons recorded under DIR are alive it says
# so and exits 0; a partly running set is stopped and started again.  Each step
# is bounded by a timeout; on failure the script prints the daemon's log tail,
# stops what it started and exits non-zero.  `stop` signals only the pids it
# recorded (postgres through `pg_ctl stop -m fast`) and waits until they are gone.
set -euo pipefail

PG_PORT_FIRST=55432
SLURM_PORT_FIRST=46817 # slurmctld; slurmd gets the next port
GPUS=4
MIN_CPUS=8

usage() {
    echo "usage: bash $0 start|stop DIR" >&2
    exit 1
}

[[ $# -eq 2 ]] || usage
ACTION=$1
[[ $ACTION == start || $ACTION == stop ]] || usage
[[ $(id -u) -eq 0 ]] || {
    echo "cluster.sh: must run as root (it starts daemons as the postgres and munge users)" >&2
    exit 1
}
if [[ $ACTION == stop && ! -d $2 ]]; then
    echo "cluster.sh: $2: no such directory, nothing to stop"
    exit 0
fi
mkdir -p "$2"
DIR=$(cd "$2" && pwd -P)
# Work in DIR, so that the postgres and munge users can read their working directory.
cd "$DIR"

RUN=$DIR/run
PG=$DIR/pg
PGDATA=$PG/data
PGSOCK=$PG/socket
PGLOG=$PG/postgres.log
MUNGE=$DIR/munge
MUNGE_SOCKET=$MUNGE/munge.socket.2
SLURM=$DIR/slurm
export SLURM_CONF=$SLURM/slurm.conf

log() { echo "cluster.sh: $*"; }

# --- processes ---------------------------------------------------------------

# gone PID: no process PID, or only a zombie waiting for init to reap it.
gone() {
    local stat
    kill -0 "$1" 2>/dev/null || return 0
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 0
    stat=${stat##*) } # the fields after "pid (comm) "
    [[ $stat == Z* ]]
}

# alive PID NAME: PID is a live process whose command name is NAME.
alive() {
    local pid=$1 name=$2 comm
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    ! gone "$pid" || return 1
    read -r comm 2>/dev/null <"/proc/$pid/comm" || return 1
    [[ $comm == "$name" ]]
}

# recorded NAME: the pid recorded for daemon NAME, or nothing.
recorded() {
    if [[ $1 == postgres ]]; then
        [[ -f $PGDATA/postmaster.pid ]] && head -n 1 "$PGDATA/postmaster.pid"
    else
        [[ -f $RUN/$1.pid ]] && cat "$RUN/$1.pid"
    fi
    return 0
}

running() { alive "$(recorded "$1")" "$1"; }

# wait_for SECONDS COMMAND...: run COMMAND every half second until it succeeds;
# fail after SECONDS.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

# wait_up SECONDS NAME COMMAND...: wait until COMMAND succeeds while the
# process recorded for NAME lives (its command name may not be NAME yet:
# setsid and setpriv exec it).
wait_up() {
    local deadline=$((SECONDS + $1)) name=$2
    shift 2
    until "$@"; do
        ! gone "$(recorded "$name")" || return 1
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

# stop_pid NAME: SIGTERM the recorded daemon NAME, wait up to 30 s, then SIGKILL.
stop_pid() {
    local name=$1 pid
    pid=$(recorded "$name")
    if alive "$pid" "$name"; then
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_for 30 gone "$pid"; then
            log "$name (pid $pid) ignored SIGTERM for 30 s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            wait_for 10 gone "$pid" || log "$name (pid $pid) is still there"
        fi
    fi
    rm -f "$RUN/$name.pid"
}

# as USER COMMAND...: run COMMAND as the system user USER.
as() {
    local user=$1
    shift
    setpriv --reuid="$user" --regid="$user" --init-groups --reset-env "$@"
}

# tail_logs FILE...: the last lines of each FILE that exists.
tail_logs() {
    local f
    for f in "$@"; do
        [[ -s $f ]] || continue
        echo "----- last lines of $f -----" >&2
        tail -n 40 "$f" >&2
    done
}

# fail MESSAGE LOG...: print MESSAGE and the logs' tails, stop what was
# started, exit 1.
fail() {
    local message=$1
    shift
    echo "cluster.sh: FAILED: $message" >&2
    tail_logs "$@"
    log "stopping what was started (state and logs stay in $DIR)"
    stop_all || true
    exit 1
}

# --- ports -------------------------------------------------------------------

# port_free PORT: nothing accepts connections on 127.0.0.1:PORT.
port_free() {
    ! timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# --- packages ----------------------------------------------------------------

pg_bindir() {
    local d
    d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
    [[ -n $d && -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]] && echo "$d"
}

install_packages() {
    local missing=0 cmd
    pg_bindir >/dev/null || missing=1
    for cmd in psql slurmctld slurmd sinfo sbatch squeue scontrol scancel munged munge unmunge; do
        command -v "$cmd" >/dev/null || missing=1
    done
    ((missing)) || return 0
    local pkgs=(postgresql slurmctld slurmd slurm-client munge)
    log "installing ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${pkgs[@]}"; then
        log "apt-get install failed; running apt-get update and trying again"
        apt-get update
        apt-get install -y --no-install-recommends "${pkgs[@]}"
    fi
    pg_bindir >/dev/null || {
        echo "cluster.sh: no PostgreSQL server under /usr/lib/postgresql/*/bin after installing" >&2
        exit 1
    }
}

# --- stop --------------------------------------------------------------------

# cancel_jobs: end every job of the private cluster, so that no slurmstepd
# outlives slurmd.
cancel_jobs() {
    running slurmctld || return 0
    local ids
    ids=$(timeout 20 squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ') || return 0
    [[ -n ${ids// /} ]] || return 0
    log "cancelling jobs: $ids"
    # shellcheck disable=SC2086 # one argument per job id
    timeout 20 scancel --full --signal=KILL $ids >/dev/null 2>&1 || true
    # shellcheck disable=SC2086
    timeout 20 scancel $ids >/dev/null 2>&1 || true
    # shellcheck disable=SC2317 # called through wait_for
    no_jobs() { [[ -z $(timeout 10 squeue -h -o %A 2>/dev/null) ]]; }
    wait_for 40 no_jobs || log "some jobs are still in the queue"
}

# our_stepds: the pids of slurmstepd processes of this cluster (their
# environment holds our SLURM_CONF, inherited from our slurmd).
our_stepds() {
    local p pid comm
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        read -r comm 2>/dev/null <"$p/comm" || continue
        [[ $comm == slurmstepd ]] || continue
        tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -qxF "SLURM_CONF=$SLURM_CONF" && echo "$pid"
    done
    return 0
}

# shellcheck disable=SC2317 # called through wait_for
no_stepds() { [[ -z $(our_stepds) ]]; }

stop_all() {
    cancel_jobs
    if running slurmd; then wait_for 15 no_stepds || log "some slurmstepd are still there"; fi
    stop_pid slurmd
    stop_pid slurmctld
    local pid
    for pid in $(our_stepds); do
        log "killing a leftover slurmstepd (pid $pid)"
        kill -KILL "$pid" 2>/dev/null || true
    done
    stop_pid munged
    pid=$(recorded postgres)
    if alive "$pid" postgres; then
        log "stopping postgres (pid $pid)"
        local bin
        bin=$(pg_bindir) && as postgres timeout 70 "$bin/pg_ctl" stop -D "$PGDATA" -m fast -w -t 60 >/dev/null ||
            log "pg_ctl stop failed"
        if ! wait_for 10 gone "$pid"; then
            log "postgres (pid $pid) still there; sending SIGQUIT"
            kill -QUIT "$pid" 2>/dev/null || true
            wait_for 10 gone "$pid" || log "postgres (pid $pid) is still there"
        fi
    fi
}

# --- start: PostgreSQL -------------------------------------------------------

start_postgres() {
    local bin=$1 port
    port=$PG_PORT_FIRST
    until port_free "$port" && [[ ! -e $PGSOCK/.s.PGSQL.$port ]]; do
        port=$((port + 1))
        ((port < PG_PORT_FIRST + 100)) || fail "no free port in $PG_PORT_FIRST..$((port - 1)) for PostgreSQL"
    done
    PG_PORT=$port

    install -d -o postgres -g postgres -m 0755 "$PG" "$PGSOCK"
    if [[ ! -f $PGDATA/PG_VERSION ]]; then
        log "initdb $PGDATA"
        rm -rf "$PGDATA"
        install -d -o postgres -g postgres -m 0700 "$PGDATA"
        as postgres timeout 120 "$bin/initdb" -D "$PGDATA" -U postgres --auth=trust \
            -E UTF8 --locale=C.UTF-8 --no-sync >"$PG/initdb.log" 2>&1 ||
            fail "initdb" "$PG/initdb.log"
        echo "include_if_exists = 'cluster.conf'" >>"$PGDATA/postgresql.conf"
    fi
    # Rewritten at each start: the port may differ from last time.
    cat >"$PGDATA/cluster.conf" <<EOF
# Written by scripts/cluster.sh at each start.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PGSOCK'
max_connections = 200
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    chown postgres:postgres "$PGDATA/cluster.conf"
    [[ -e $PGLOG ]] || install -o postgres -g postgres -m 0644 /dev/null "$PGLOG"

    log "starting postgres on 127.0.0.1:$PG_PORT"
    # setsid: its own session, so that closing the terminal does not end it.
    setsid --wait setpriv --reuid=postgres --regid=postgres --init-groups --reset-env \
        timeout 70 "$bin/pg_ctl" start -D "$PGDATA" -l "$PGLOG" -w -t 60 >"$PG/pg_ctl.log" 2>&1 ||
        fail "pg_ctl start" "$PG/pg_ctl.log" "$PGLOG"

    local psql=("$bin/psql" -h "$PGSOCK" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA)
    if [[ -z $(timeout 20 "${psql[@]}" -c "select 1 from pg_roles where rolname = 'sweep'") ]]; then
        timeout 20 "${psql[@]}" -c "create role sweep login superuser" ||
            fail "create role sweep" "$PGLOG"
    fi
    if [[ -z $(timeout 20 "${psql[@]}" -c "select 1 from pg_database where datname = 'sweep_test'") ]]; then
        timeout 20 "${psql[@]}" -c "create database sweep_test owner sweep" ||
            fail "create database sweep_test" "$PGLOG"
    fi
    timeout 20 "$bin/psql" "postgres://sweep@127.0.0.1:$PG_PORT/sweep_test" -qtAc 'select 1' >/dev/null ||
        fail "connecting as sweep to sweep_test over TCP" "$PGLOG"
}

# --- start: munge ------------------------------------------------------------

# shellcheck disable=SC2317 # called through wait_up
munge_works() {
    munge -n --socket="$MUNGE_SOCKET" 2>/dev/null | unmunge --socket="$MUNGE_SOCKET" >/dev/null 2>&1
}

start_munge() {
    install -d -o munge -g munge -m 0755 "$MUNGE"
    if [[ ! -s $MUNGE/munge.key ]]; then
        dd if=/dev/urandom of="$MUNGE/munge.key" bs=1024 count=1 status=none
    fi
    chown munge:munge "$MUNGE/munge.key"
    chmod 0400 "$MUNGE/munge.key"
    # A socket left by a munged that died (ours is not running: checked above).
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"

    log "starting munged"
    setsid setpriv --reuid=munge --regid=munge --init-groups --reset-env \
        "$(command -v munged)" --foreground --socket="$MUNGE_SOCKET" --key-file="$MUNGE/munge.key" \
        --pid-file="$MUNGE/munged.pid" --seed-file="$MUNGE/munged.seed" </dev/null >"$MUNGE/munged.out" 2>&1 &
    echo $! >"$RUN/munged.pid"
    wait_up 20 munged munge_works || fail "munged did not answer in 20 s" "$MUNGE/munged.out"
}

# --- start: Slurm ------------------------------------------------------------

write_slurm_conf() {
    local host=$1 ctld_port=$2 cpus
    cpus=$(nproc)
    ((cpus >= MIN_CPUS)) || cpus=$MIN_CPUS
    cat >"$SLURM_CONF" <<EOF
# Written by scripts/cluster.sh: a one-node test cluster; read through SLURM_CONF.
ClusterName=sweeptest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$((ctld_port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job waits before it may start again.
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=10
StateSaveLocation=$SLURM/state
SlurmdSpoolDir=$SLURM/spool
SlurmctldPidFile=$SLURM/slurmctld.pid
SlurmdPidFile=$SLURM/slurmd.pid
SlurmctldLogFile=$SLURM/slurmctld.log
SlurmdLogFile=$SLURM/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups, no accounting.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# The node may declare more CPUs than it has without being drained.
SlurmdParameters=config_overrides
GresTypes=gpu
ReturnToService=2
JobRequeue=1
KillWait=30
MinJobAge=30
# Look for startable jobs every 5 s (defaults: 60 s and 30 s), so that a
# requeued job starts soon after its cred_expire delay rather than up to a minute later.
SchedulerParameters=sched_interval=5,bf_interval=5
MailProg=/bin/true
InactiveLimit=0
Waittime=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=2048 Gres=gpu:$GPUS State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
    cat >"$SLURM/gres.conf" <<EOF
# Written by scripts/cluster.sh: $GPUS fake GPUs.
AutoDetect=off
Name=gpu File=$DIR/dev/nvidia[0-$((GPUS - 1))]
EOF
}

make_fake_gpus() {
    local i dev
    mkdir -p "$DIR/dev"
    for ((i = 0; i < GPUS; i++)); do
        dev=$DIR/dev/nvidia$i
        [[ -c $dev ]] && continue
        rm -f "$dev"
        mknod -m 0666 "$dev" c 195 "$i"
    done
}

# shellcheck disable=SC2317 # called through wait_up
ctld_up() { timeout 10 scontrol ping 2>/dev/null | grep -q UP; }

node_state() { timeout 10 sinfo -h -N -n "$1" -o %T 2>/dev/null | head -n 1; }

node_idle() { [[ $(node_state "$1") == idle ]]; }

start_slurm() {
    local host port
    host=$(hostname -s 2>/dev/null || uname -n)
    host=${host%%.*}
    port=$SLURM_PORT_FIRST
    until port_free "$port" && port_free $((port + 1)); do
        port=$((port + 2))
        ((port < SLURM_PORT_FIRST + 200)) || fail "no two free ports in $SLURM_PORT_FIRST..$((port - 1)) for Slurm"
    done
    mkdir -p "$SLURM/state" "$SLURM/spool"
    make_fake_gpus
    write_slurm_conf "$host" "$port"

    log "starting slurmctld on port $port"
    setsid slurmctld -D -i </dev/null >"$SLURM/slurmctld.out" 2>&1 &
    echo $! >"$RUN/slurmctld.pid"
    wait_up 30 slurmctld ctld_up || fail "slurmctld did not answer in 30 s" "$SLURM/slurmctld.out" "$SLURM/slurmctld.log"

    log "starting slurmd on port $((port + 1))"
    setsid slurmd -D </dev/null >"$SLURM/slurmd.out" 2>&1 &
    echo $! >"$RUN/slurmd.pid"
    local deadline=$((SECONDS + 60)) state resumed=0
    until node_idle "$host"; do
        ! gone "$(recorded slurmd)" || fail "slurmd exited" "$SLURM/slurmd.out" "$SLURM/slurmd.log"
        state=$(node_state "$host")
        if ((!resumed)) && [[ $state == down* || $state == drain* ]]; then
            log "node $host is $state; resuming it"
            timeout 10 scontrol update nodename="$host" state=resume || true
            resumed=1
        fi
        ((SECONDS < deadline)) ||
            fail "node $host not idle after 60 s (state: ${state:-unknown})" \
                "$SLURM/slurmd.out" "$SLURM/slurmd.log" "$SLURM/slurmctld.log"
        sleep 0.5
    done
}

# --- main --------------------------------------------------------------------

if [[ $ACTION == stop ]]; then
    stop_all
    log "stopped (state and logs stay in $DIR)"
    exit 0
fi

DAEMONS=(postgres munged slurmctld slurmd)
all_running=1 any_running=0
for d in "${DAEMONS[@]}"; do
    if running "$d"; then any_running=1; else all_running=0; fi
done
if ((all_running)) && [[ -f $DIR/env.sh ]]; then
    log "already running under $DIR"
    echo "source $DIR/env.sh"
    exit 0
fi
if ((any_running)); then
    log "only part of the cluster is running under $DIR; restarting it"
    stop_all
fi

started=$SECONDS
install_packages
PG_BIN=$(pg_bindir)
mkdir -p "$RUN" "$SLURM"
chmod 0755 "$DIR"
for user in postgres munge; do
    as "$user" test -x "$DIR" ||
        fail "user $user cannot reach $DIR (a parent directory is closed to it); choose a DIR under /tmp, say"
done
rm -f "$DIR/env.sh"

start_postgres "$PG_BIN"
start_munge
start_slurm

cat >"$DIR/env.sh" <<EOF
# Written by scripts/cluster.sh start: the private test cluster under $DIR.
export SWEEP_TEST_PG=postgres://sweep@127.0.0.1:$PG_PORT/sweep_test
export SLURM_CONF=$SLURM_CONF
export SWEEP_TEST_SLURM=1
case ":\$PATH:" in
*":$PG_BIN:"*) ;;
*) export PATH="$PG_BIN:\$PATH" ;;
esac
EOF
log "started in $((SECONDS - started)) s: PostgreSQL on 127.0.0.1:$PG_PORT, Slurm node $(hostname -s 2>/dev/null || uname -n) with $GPUS fake GPUs"
echo "source $DIR/env.sh"
