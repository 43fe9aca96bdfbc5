# bench/lib.sh: what bench/run and bench/burst share, sourced by both
# under `set -euo pipefail`. See bench/README.md.
#
# Here: logging, installing packages without starting their daemons,
# building preforkd (the server measured, and `preforkd load`, the load
# generator), starting a server and waiting until it is ready, stopping
# everything on exit, one load run as a KEY=VALUE line, a server's CPU
# time, the rounds, medians and ratios. Not here: the servers, their
# configs and readiness probes, the tables: each script's own.
#
# A script sources it as `. bench/lib.sh TAG PORT`: TAG names the script
# in log lines, PORT is the first port `free_port` tries. It moves to the
# repository's root. The script defines `measure NAME ROUND` for `rounds`.

LOG_TAG=$1
NEXT_PORT=$2
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WORK=""        # scratch directory: configs, logs
PIDS=()        # every server started and not stopped yet
SAMPLER=""     # a background sampler running during a measurement
POLICY_RC_D="" # a policy-rc.d created here, to remove
SERVER_PID=""  # the server `spawn` started last

log() { printf '%s: %s\n' "$LOG_TAG" "$*" >&2; }
die() {
    log "$*"
    exit 1
}

cleanup() {
    local pid
    if [[ -n $SAMPLER ]]; then kill "$SAMPLER" 2>/dev/null || true; fi
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [[ -n $POLICY_RC_D ]]; then rm -f "$POLICY_RC_D"; fi
    if [[ -n $WORK ]]; then
        stop_strays
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# stop PID: stop_pid, and forget it (its number may be reused once reaped).
stop() {
    local pid=$1 i
    stop_pid "$pid"
    for i in "${!PIDS[@]}"; do
        if [[ ${PIDS[$i]} == "$pid" ]]; then unset "PIDS[$i]"; fi
    done
}

# SIGTERM, then SIGKILL after 5 s; never fails.
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Stops a server that left the process started (one that detached): any
# live process named by a pidfile in the scratch directory.
stop_strays() {
    local f pid
    for f in "$WORK"/*/*.pid; do
        [[ -f $f ]] || continue
        pid=$(cat "$f" 2>/dev/null) || continue
        if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
            log "stopping $pid, named by $f"
            stop_pid "$pid"
        fi
    done
}

# ---------------------------------------------------------------- packages

# apt_install UNITS INITD PACKAGE...: installs the packages (root needed),
# and keeps their daemon from starting meanwhile (a temporary
# /usr/sbin/policy-rc.d): the scripts run the binaries with configs of
# their own, on high loopback ports. If neither the first of UNITS (systemd
# units) nor /etc/init.d/INITD was there before, UNITS are disabled after.
apt_install() {
    local units=$1 initd=$2 had=no
    shift 2
    ((EUID == 0)) || die "missing $*: run as root, or apt-get install them"
    [[ -e /lib/systemd/system/${units%% *} || -e /etc/init.d/$initd ]] && had=yes
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        POLICY_RC_D=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC_D"
        chmod 755 "$POLICY_RC_D"
    fi
    log "installing $*"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    if [[ -n $POLICY_RC_D ]]; then
        rm -f "$POLICY_RC_D"
        POLICY_RC_D=""
    fi
    if [[ $had == no ]] && [[ -d /run/systemd/system ]]; then
        # shellcheck disable=SC2086 # one word a unit
        systemctl disable --now $units >/dev/null 2>&1 || true
        log "disabled the packaged ${units%% *} (only the binary is used)"
    fi
}

# ---------------------------------------------------------------- build

LOAD=target/release/preforkd # `preforkd load`, the load generator
PREFORKD=$LOAD               # the preforkd measured
PREFORKD_SKIP=""             # why preforkd's rows are skipped, if they are

# build_preforkd OVERRIDE: builds preforkd (cargo build --release), the
# load generator of every measurement. OVERRIDE, if set, is another
# preforkd binary to measure (the load generator is still this one's).
build_preforkd() {
    log "building preforkd (cargo build --release)"
    cargo build --release >&2 || die "preforkd does not build (cargo build --release failed): it is the load generator"
    [[ -x $LOAD ]] || die "$LOAD is missing"
    if [[ -n $1 ]]; then
        PREFORKD=$1
        [[ -x $PREFORKD ]] || PREFORKD_SKIP="$PREFORKD is not an executable"
    fi
}

# ---------------------------------------------------------------- servers

# A port on 127.0.0.1 that nothing uses, from NEXT_PORT up.
free_port() {
    local port=$NEXT_PORT
    while [[ -n $(ss -Htan "( sport = :$port )") ]]; do port=$((port + 1)); done
    NEXT_PORT=$((port + 1))
    echo "$port"
}

# spawn NAME COMMAND...: runs COMMAND in the background, its output in
# $WORK/NAME.log; SERVER_PID is its pid.
spawn() {
    local name=$1
    shift
    "$@" >"$WORK/$name.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
}

# await NAME COMMAND...: waits until COMMAND succeeds, 10 s at most and
# while SERVER_PID lives; if it does not, shows NAME's logs, stops the
# server and returns 1.
await() {
    local name=$1 i
    shift
    for ((i = 0; i < 100; i++)); do
        "$@" && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    log "$name did not get ready ($*); its output:"
    show_logs "$name"
    stop "$SERVER_PID"
    stop_strays
    return 1
}

declare -A SKIP # why a server is skipped, by name
PORT=""         # the port `up` started the server on

# up NAME START [WHY]: starts NAME with `START NAME PORT` on a free port,
# PORT. Fails, with nothing started, when NAME is skipped: it was before,
# WHY says why, or it does not start (from then on).
up() {
    local name=$1 start=$2 why=${3:-}
    if [[ -n ${SKIP[$name]:-} ]]; then return 1; fi
    if [[ -n $why ]]; then
        SKIP[$name]=$why
        log "skipping $name: $why"
        return 1
    fi
    PORT=$(free_port)
    "$start" "$name" "$PORT" && return 0
    SKIP[$name]="did not start (see above)"
    return 1
}

# show_logs NAME: the end of NAME's output and of its error log, indented.
show_logs() {
    local f
    for f in "$WORK/$1.log" "$WORK/$1/error.log"; do
        if [[ -s $f ]]; then tail -n 20 "$f" | sed 's/^/    /' >&2; fi
    done
}

# ---------------------------------------------------------------- measuring

# millis SECONDS: as a `preforkd load` duration, "500ms".
millis() { awk -v s="$1" 'BEGIN { printf "%dms", int(s * 1000 + 0.5) }'; }

# load_kv ADDR ARG...: one `preforkd load ADDR ARG... --json`, as one line
# `conns=N errors=N secs=S cps=X p50_us=N p90_us=N p99_us=N max_us=N`; its
# first failure, if any, on stderr.
load_kv() {
    local json error
    json=$("$LOAD" load "$@" --json) || true
    if [[ $json != '{'* ]]; then
        log "preforkd load $* printed no result"
        echo "conns=0 errors=1 secs=0 cps=0 p50_us=0 p90_us=0 p99_us=0 max_us=0"
        return 0
    fi
    error=$(sed -n 's/.*"first_error":"\(.*\)".*/\1/p' <<<"$json")
    if [[ -n $error ]]; then log "$1: first failure: $error"; fi
    grep -oE '"[a-z0-9_]+":[-0-9.e+]+' <<<"$json" |
        sed -E 's/^"connections"/conns/; s/^"failed"/errors/; s/^"seconds"/secs/; s/^"per_second"/cps/;
                s/^"([a-z0-9_]+)"/\1/; s/:/=/' |
        paste -sd ' ' -
}

# tree_cpu PID: the CPU time, in clock ticks (user and system, with that of
# the reaped children), of PID and of every process below it.
tree_cpu() {
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v root="$1" '
        { pid = $1; line = $0; sub(/^.*\) /, "", line); split(line, f, " ")
          parent[pid] = f[2]; ticks[pid] = f[12] + f[13] + f[14] + f[15] }
        END {
            for (p in ticks) {
                q = p
                while (q != root && (q in parent) && q + 0 > 1) q = parent[q]
                if (q == root) n += ticks[p]
            }
            print n + 0
        }'
}

# per_connection_us TICKS CONNS: CPU microseconds a connection.
CLK_TCK=$(getconf CLK_TCK)
per_connection_us() {
    awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", (n > 0 ? t * 1e6 / hz / n : 0) }'
}

# rounds ROUNDS SERVER...: `measure SERVER ROUND` for each server and
# round, every other round in reverse order, so that a drift of the
# machine during the run does not always favour the same servers.
rounds() {
    local n=$1 round i s order
    shift
    for ((round = 1; round <= n; round++)); do
        order=("$@")
        if ((round % 2 == 0)); then
            order=()
            for ((i = $#; i >= 1; i--)); do order+=("${!i}"); done
        fi
        for s in "${order[@]}"; do measure "$s" "$round"; done
    done
}

# median KEY LINES: the median (the lower one of an even count) of
# KEY=value over KEY=VALUE lines.
median() {
    awk -v key="$1" '{ for (i = 1; i <= NF; i++) if (index($i, key "=") == 1) print substr($i, length(key) + 2) }' \
        <<<"$2" | sort -g | awk '{ v[NR] = $0 } END { print NR ? v[int((NR + 1) / 2)] : 0 }'
}

# sum KEY LINES: the sum of KEY=value over KEY=VALUE lines.
sum() {
    awk -v key="$1" '{ for (i = 1; i <= NF; i++) if (index($i, key "=") == 1) n += substr($i, length(key) + 2) }
                     END { print n + 0 }' <<<"$2"
}

# ratio A B [DECIMALS]: A/B (two decimals unless told), or "-" when B is 0.
ratio() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { if (b > 0) printf "%." d "f", a / b; else printf "-" }'; }

# header TITLE: the first lines of a results file.
header() {
    echo "$1"
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(uname -srm)  cpus: $(nproc)" \
        " commit: $(git describe --always --dirty 2>/dev/null || echo none)"
}
