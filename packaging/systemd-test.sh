#!/usr/bin/env bash
# packaging/systemd-test.sh [DEB]: the .deb under a real systemd.
#
# Boots Debian 12's systemd as PID 1 of a systemd-nspawn container, with
# the package installed, and checks from the host, through `nsenter -t
# <its PID 1> -a systemctl/journalctl`, what preforkd(8), SYSTEMD and
# BINARY UPGRADE promise. Each check prints one line, `ok: ...` or
# `FAIL: ...`; the script exits 1 if any failed, or if the container could
# not be made or booted (it then says why). Run as root.
#
# DEB: the package to test; without it, built as packaging/ci-package.sh
# builds it. The root filesystem is made once with mmdebstrap, from the
# archive apt uses, and kept in target/systemd-test/rootfs.tar.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

WORK=target/systemd-test
CACHE=$WORK/rootfs.tar
failed=0
ok() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*"
    failed=$((failed + 1))
}
die() {
    echo "FAIL: $*"
    exit 1
}

[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap, systemd-nspawn, nsenter)"

DEB=${1:-}
if [ -z "$DEB" ]; then
    VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
    DEB=target/debian/preforkd_${VERSION}-1_$(dpkg --print-architecture).deb
    cargo build --release --locked --quiet || die "cargo build --release failed"
    cargo deb --no-build --quiet >/dev/null || die "cargo deb failed (cargo install cargo-deb)"
fi
[ -f "$DEB" ] || die "no package at $DEB"

if ! command -v mmdebstrap >/dev/null || ! command -v systemd-nspawn >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap systemd-container \
        >/dev/null || die "cannot install mmdebstrap and systemd-container"
fi

mkdir -p "$WORK"
if [ ! -s "$CACHE" ]; then
    # --format: the name ends in .part, from which mmdebstrap would guess a
    # directory.
    mmdebstrap --quiet --variant=minbase --format=tar \
        --include=systemd,systemd-sysv,dbus,procps,adduser bookworm "$CACHE.part" \
        || die "mmdebstrap could not make the Debian 12 root filesystem"
    mv "$CACHE.part" "$CACHE"
fi
ROOT=$(mktemp -d "$PWD/$WORK/root.XXXXXX")
NSPAWN=
PAYLOAD=
P1=
cleanup() {
    if [ -n "$P1" ]; then
        nsenter -t "$P1" -a systemctl poweroff >/dev/null 2>&1
    fi
    if [ -n "$NSPAWN" ]; then
        for _ in $(seq 1 100); do
            kill -0 "$NSPAWN" 2>/dev/null || break
            sleep 0.1
        done
        kill "$NSPAWN" 2>/dev/null
        wait "$NSPAWN" 2>/dev/null
    fi
    # systemd-nspawn --keep-unit without a host systemd leaves its
    # container's `payload` cgroup behind, empty: this container's only,
    # not another's that is running.
    for d in $PAYLOAD; do
        [ -d "$d" ] || continue
        find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
        [ -d "$d" ] && echo "systemd-test: $d is left (not empty)"
    done
    rm -rf "$ROOT"
}
trap cleanup EXIT

tar -C "$ROOT" -xf "$CACHE" || die "cannot unpack $CACHE"
cp "$DEB" "$ROOT/tmp/preforkd.deb"
chroot "$ROOT" dpkg -i /tmp/preforkd.deb >"$WORK/dpkg.log" 2>&1 \
    || die "dpkg -i in the container's root failed: $(tail -n3 "$WORK/dpkg.log")"
# A watchdog short enough to be seen at work, and no start at boot: the
# checks start it.
mkdir -p "$ROOT/etc/systemd/system/preforkd.service.d"
printf '[Service]\nWatchdogSec=3s\n' >"$ROOT/etc/systemd/system/preforkd.service.d/test.conf"
rm -f "$ROOT/etc/systemd/system/multi-user.target.wants/preforkd.service"
# A program that writes a line on its stderr, naming its own pid, for the
# journal check.
cat >>"$ROOT/etc/preforkd/preforkd.toml" <<'EOF_TOML'

[[service]]
name = "stderr-test"
listen = ["127.0.0.1:7020"]
exec = ["/bin/sh", "-c", "echo to-the-journal-from-$$ >&2; echo hello"]
user = "nobody"
workers = 1
EOF_TOML
cp "$ROOT/etc/preforkd/preforkd.toml" "$ROOT/etc/preforkd/preforkd.toml.orig"

systemd-nspawn -q -D "$ROOT" --boot --register=no --keep-unit --private-network \
    --console=pipe >"$WORK/console.log" 2>&1 </dev/null &
NSPAWN=$!
# The container's PID 1: the descendant of systemd-nspawn whose pid is 1
# in its own namespace, once it is systemd (before, nspawn's own child).
for _ in $(seq 1 300); do
    kill -0 "$NSPAWN" 2>/dev/null \
        || die "systemd-nspawn exited at once: $(tail -n5 "$WORK/console.log")"
    for p in $(ps -e -o pid= -o ppid= | awk -v n="$NSPAWN" '
        { parent[$1] = $2 } END { for (p in parent) { q = p
            while (q in parent && q != n && q > 1) q = parent[q]
            if (q == n) print p } }'); do
        if grep -q '^NSpid:.*[[:space:]]1$' "/proc/$p/status" 2>/dev/null \
            && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = systemd ]; then
            P1=$p
        fi
    done
    [ -n "$P1" ] && break
    sleep 0.1
done
[ -n "$P1" ] || die "no PID 1 in the container after 30 s: $(tail -n5 "$WORK/console.log")"
C=(nsenter -t "$P1" -a)
# Its cgroups, as the host sees them: .../payload in the unified
# hierarchy (/sys/fs/cgroup, or /sys/fs/cgroup/unified when hybrid) and
# in systemd's named one of a hybrid host.
while IFS=: read -r _ controllers cg; do
    case $cg in */payload*) ;; *) continue ;; esac
    case $controllers in
        "") base=/sys/fs/cgroup
            [ -d /sys/fs/cgroup/unified ] && base=/sys/fs/cgroup/unified ;;
        name=systemd) base=/sys/fs/cgroup/systemd ;;
        *) continue ;;
    esac
    PAYLOAD="$PAYLOAD $base${cg%%/payload*}/payload"
done <"/proc/$P1/cgroup"
# "offline", or no bus, until systemd listens on its private socket.
for _ in $(seq 1 300); do
    state=$(timeout 90 "${C[@]}" systemctl is-system-running --wait 2>&1)
    case $state in offline | *"connect to bus"*) sleep 0.1 ;; *) break ;; esac
done
case $state in
    running | degraded) ok "the container booted (systemd $("${C[@]}" systemctl --version | head -n1 | cut -d' ' -f2), $state)" ;;
    *) die "the container did not boot: is-system-running says '$state'; console: $(tail -n5 "$WORK/console.log")" ;;
esac

sc() { "${C[@]}" systemctl "$@"; }
prop() { sc show -p "$1" --value preforkd; }
# Echo: 5 connections of 16 bytes from inside the container.
echo_ok() { "${C[@]}" preforkd load 127.0.0.1:7007 --connections "${1:-5}" --bytes 16 --json >/dev/null 2>&1; }
cursor() { "${C[@]}" journalctl -n0 --show-cursor -q | sed -n 's/^-- cursor: //p'; }
journal_since() { "${C[@]}" journalctl -q --no-pager --after-cursor "$1" "${@:2}"; }
# The unit's messages since cursor $1 at priority $2, from the JSON (with
# -p, journalctl 252 finds nothing after a cursor that -p does not match).
at_priority() {
    journal_since "$1" -u preforkd -o json | grep -F "\"PRIORITY\":\"$2\"" \
        | grep -oE '"MESSAGE":"[^"]*"'
}
# Waits until MainPID is neither 0 nor $1 and the old master is gone.
wait_new_main() {
    local old=$1 pid
    for _ in $(seq 1 100); do
        pid=$(prop MainPID)
        if [ "$pid" != 0 ] && [ "$pid" != "$old" ] && ! "${C[@]}" kill -0 "$old" 2>/dev/null; then
            echo "$pid"
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# --- start ---
if sc start preforkd && [ "$(sc is-active preforkd)" = active ] && echo_ok; then
    ok "start: active once started, and echo answers at once"
else
    fail "start: $(sc is-active preforkd); $("${C[@]}" journalctl -q -u preforkd -n5 -o cat 2>&1)"
fi
status=$(prop StatusText)
case $status in
    *pools*generation*) ok "StatusText: $status" ;;
    *) fail "StatusText is '$status'" ;;
esac
echo_ok 50 && ok "echo: 50 connections answered" || fail "echo does not answer"

# --- reload ---
# echo's idle workers, and every pool's, as `preforkd status --json` counts them.
idle_of() {
    "${C[@]}" preforkd status -c /etc/preforkd/preforkd.toml --json 2>/dev/null |
        python3 -c 'import json, sys
pools = json.load(sys.stdin)["pools"]
print(sum(p["idle"] for p in pools if p["service"] == "echo"), sum(p["idle"] for p in pools))'
}
sed -i '/^name = "echo"/a workers = 6' "$ROOT/etc/preforkd/preforkd.toml"
if sc reload preforkd; then
    # Settled: echo has its 6 workers, all idle, and StatusText counts
    # what status counts (polled for at most 10 s).
    settled=
    for _ in $(seq 100); do
        read -r echo_idle all_idle < <(idle_of) || true
        status=$(prop StatusText)
        case $status in
            *" ${all_idle:-x} idle, generation 2")
                [ "${echo_idle:-0}" = 6 ] && { settled=1; break; } ;;
        esac
        sleep 0.1
    done
    if [ -n "$settled" ]; then
        ok "reload: echo has 6 workers, StatusText now: $status"
    else
        fail "reload: not settled in 10 s: StatusText '$status', status counts ${echo_idle:-?} idle for echo and ${all_idle:-?} in all"
    fi
else
    fail "reload of a good file failed"
fi
echo 'this is not toml = = =' >>"$ROOT/etc/preforkd/preforkd.toml"
if sc reload preforkd 2>/dev/null; then
    fail "reload of a broken file succeeded"
elif [ "$(sc is-active preforkd)" = active ] && echo_ok; then
    ok "reload of a broken file fails, and the service keeps serving"
else
    fail "after a broken reload: $(sc is-active preforkd)"
fi
cp "$ROOT/etc/preforkd/preforkd.toml.orig" "$ROOT/etc/preforkd/preforkd.toml"

# --- binary upgrade under load ---
c=$(cursor)
old=$(prop MainPID)
"${C[@]}" preforkd load 127.0.0.1:7007 --clients 4 --duration 4s --bytes 16 --json \
    >"$WORK/load.json" 2>&1 &
load=$!
sleep 1
sc kill -s USR2 --kill-whom=main preforkd
if new=$(wait_new_main "$old"); then
    ok "upgrade: MainPID $old -> $new"
else
    fail "upgrade: MainPID still $(prop MainPID)"
fi
wait "$load"
result=$(cat "$WORK/load.json")
case $result in
    *'"failed":0,'*) ok "upgrade: nothing refused meanwhile ($(echo "$result" | sed 's/.*"connections":\([0-9]*\).*/\1/') connections)" ;;
    *) fail "upgrade: the load during it: $result" ;;
esac
[ "$(sc is-active preforkd)" = active ] && echo_ok \
    && ok "upgrade: still active, echo answers" || fail "upgrade: $(sc is-active preforkd) after it"
sleep 0.5
case $(prop StatusText) in
    *generation*) ok "upgrade: StatusText: $(prop StatusText)" ;;
    *) fail "upgrade: StatusText is '$(prop StatusText)'" ;;
esac
bad=$(journal_since "$c" -u preforkd -o cat | grep -E "not our child|reception only permitted")
[ -z "$bad" ] && ok "upgrade: systemd took every notification, and supervises the new master as its child" \
    || fail "upgrade: systemd says: $bad"
sleep 4 # a watchdog period and more, on the new master
[ "$(prop NRestarts)" = 0 ] && [ "$new" -gt 0 ] && [ "$(prop MainPID)" = "$new" ] \
    && [ "$(prop WatchdogUSec)" = 3s ] && ok "watchdog: fed by the new master after the upgrade" \
    || fail "watchdog: NRestarts $(prop NRestarts), MainPID $(prop MainPID)"

# --- the journal's priorities ---
c2=$(cursor)
old=$(prop MainPID)
# A worker killed by a signal: a warning of the master.
worker=$("${C[@]}" pgrep -P "$(prop MainPID)" | head -n1)
"${C[@]}" kill -KILL "$worker"
for _ in $(seq 1 30); do
    warn=$(at_priority "$c2" 4 | grep -E '[MW][0-9]{4}')
    [ -n "$warn" ] && break
    sleep 0.1
done
info=$(at_priority "$c" 6 | grep -c 'M0041\|M0043')
wrong=$(journal_since "$c" -u preforkd -o json | grep -E '"MESSAGE":"[^"]*M004[13]' \
    | grep -v '"PRIORITY":"6"' | grep -oE '"MESSAGE":"[^"]*"')
[ "$info" -ge 2 ] && [ -z "$wrong" ] && ok "journal: M0041/M0043 at priority info, and only there" \
    || fail "journal: M0041/M0043 at priority info: $info; elsewhere: $wrong"
[ -n "$warn" ] && ok "journal: a killed worker's line at priority warning: $(echo "${warn#*: warning: }" | tr -d '"')" \
    || fail "journal: no line at priority warning after a worker was killed: $(journal_since "$c2" -u preforkd -o verbose | grep -E 'PRIORITY=|MESSAGE=' | tail -n4 | tr '\n' ' ')"

# --- a program's stderr in the journal ---
# One line, at priority info, tagged with the service and the program's
# pid, which is the pid the program wrote (its $$).
c3=$(cursor)
"${C[@]}" preforkd load 127.0.0.1:7020 --clients 1 --connections 1 --expect hello --json >/dev/null 2>&1
line=
for _ in $(seq 1 50); do
    line=$(at_priority "$c3" 6 | grep -F 'to-the-journal-from-' | head -n1)
    [ -n "$line" ] && break
    sleep 0.1
done
tagged=$(echo "$line" | sed -nE 's/.*service stderr-test: sh\[([0-9]+)\]: to-the-journal-from-([0-9]+).*/\1 \2/p')
if [ -n "$tagged" ] && [ "${tagged% *}" = "${tagged#* }" ]; then
    ok "journal: a program's stderr line at priority info, tagged: $(echo "$line" | sed 's/^"MESSAGE":"//; s/"$//')"
else
    fail "journal: a program's stderr: '$line'; since then: $(journal_since "$c3" -u preforkd -o cat | tail -n3 | tr '\n' ' ')"
fi

# --- upgrade then stop, 10 times ---
clean=0
for i in $(seq 1 10); do
    sc start preforkd
    c=$(cursor)
    old=$(prop MainPID)
    sc kill -s USR2 --kill-whom=main preforkd
    if ! wait_new_main "$old" >/dev/null; then
        echo "   run $i: no new MainPID"
        continue
    fi
    sc stop preforkd
    j=$(journal_since "$c" -u preforkd -o cat)
    if [ "$(prop Result)" = success ] && [ "$(prop ExecMainStatus)" = 0 ] \
        && ! grep -qE "Failed with result|SIGKILL|not our child" <<<"$j"; then
        clean=$((clean + 1))
    else
        echo "   run $i: Result $(prop Result), status $(prop ExecMainStatus): $(grep -E "Failed|SIGKILL|not our child" <<<"$j" | head -n2)"
    fi
done
[ "$clean" = 10 ] && ok "upgrade then stop: graceful, exit 0, in 10 of 10 runs" \
    || fail "upgrade then stop: clean in $clean of 10 runs"

# --- watchdog ---
# Alive means the same main process, active, with the watchdog armed, after
# two periods and more: a unit that is missing or has no watchdog reads
# NRestarts=0 too.
sc start preforkd
healthy=$(prop MainPID)
sleep 7
if [ "$(prop WatchdogUSec)" = 3s ] && [ "$(sc is-active preforkd)" = active ] \
    && [ "$healthy" -gt 0 ] && [ "$(prop MainPID)" = "$healthy" ] && [ "$(prop NRestarts)" = 0 ]; then
    ok "watchdog: alive after 7 s with WatchdogSec=3s (MainPID $healthy throughout)"
else
    fail "watchdog: WatchdogUSec '$(prop WatchdogUSec)', $(sc is-active preforkd), MainPID $healthy -> $(prop MainPID), NRestarts $(prop NRestarts)"
fi
c=$(cursor)
stopped=$(prop MainPID)
"${C[@]}" kill -STOP "$stopped"
restarted=
for _ in $(seq 1 150); do
    if [ "$(prop NRestarts)" -ge 1 ] && [ "$(sc is-active preforkd)" = active ]; then
        restarted=1
        break
    fi
    sleep 0.1
done
if [ -n "$restarted" ] && journal_since "$c" -u preforkd -o cat | grep -q "Watchdog timeout"; then
    ok "watchdog: a SIGSTOPped master is restarted (MainPID $stopped -> $(prop MainPID))"
else
    fail "watchdog: SIGSTOPped master: NRestarts $(prop NRestarts), $(sc is-active preforkd)"
fi
echo_ok || fail "echo does not answer after the watchdog's restart"

# --- socket activation ---
sc stop preforkd
sc reset-failed preforkd 2>/dev/null
if sc start preforkd.socket && [ "$(sc is-active preforkd)" = inactive ]; then
    first=$("${C[@]}" preforkd load 127.0.0.1:7007 --connections 1 --bytes 16 --json 2>&1)
    case $first in
        *'"connections":1,"failed":0,'*) ok "socket: the first connection, made while the service was stopped, is served" ;;
        *) fail "socket: the first connection: $first; service $(sc is-active preforkd)" ;;
    esac
    echo_ok 20 && ok "socket: the activated service serves" || fail "socket: the activated service does not answer"
else
    fail "socket: preforkd.socket $(sc is-active preforkd.socket), service $(sc is-active preforkd)"
fi
sc stop preforkd preforkd.socket

if [ "$failed" -gt 0 ]; then
    echo "systemd-test: $failed checks failed"
    exit 1
fi
echo "systemd-test: every check passed"
