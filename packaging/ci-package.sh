#!/usr/bin/env bash
# CI for the documentation and the packages, run by .ci/run as root on a
# fresh Debian 12 machine (systemd installed but not PID 1), after the
# tests. In order:
#   1. every man page: `mandoc -T lint` at level warning says nothing, and
#      `man -l` renders it without a word on stderr;
#   2. the .deb: built with cargo-deb, lintian finds no error or warning
#      (one tag suppressed, below), dpkg -i installs it;
#   3. `systemd-analyze verify` of both units says nothing (it needs the
#      binary and the man pages the units name: hence after dpkg -i);
#   4. the installed binary checks the installed config, then runs it as
#      the unit's ExecStart does, with the unit's capability bounding set
#      and no_new_privs, and its echo builtin answers; ExecReload reloads
#      it; SIGTERM, as `systemctl stop` sends, stops it with exit 0;
#   5. dpkg --purge leaves none of the package's files, units' symlinks,
#      system user or group behind;
#   6. rpmbuild builds the RPM from packaging/rpm/preforkd.spec, offline,
#      from the source tree and the vendored crates.
# Each step prints how long it took.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CARGO_DEB_VERSION=3.8.0
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
DEB=target/debian/preforkd_${VERSION}-1_$(dpkg --print-architecture).deb
UNIT=packaging/systemd/preforkd.service
SOCKET=packaging/systemd/preforkd.socket

step_start=$SECONDS
step() {
    printf '\n== %s\n' "$*"
    step_start=$SECONDS
}
step_done() {
    echo "   ok ($((SECONDS - step_start)) s)"
}
fail() {
    echo "ci-package: $*" >&2
    exit 1
}

step "tools: mandoc, man, lintian, rpmbuild, systemd-analyze, objcopy"
missing=()
command -v mandoc >/dev/null || missing+=(mandoc)
command -v man >/dev/null || missing+=(man-db)
command -v lintian >/dev/null || missing+=(lintian)
command -v rpmbuild >/dev/null || missing+=(rpm)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v objcopy >/dev/null || missing+=(binutils)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi
if ! cargo deb --version 2>/dev/null | grep -qF "$CARGO_DEB_VERSION"; then
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --quiet
fi
step_done

step "man pages: mandoc -T lint -W warning, man -l"
for page in man/*.[0-9]; do
    # STYLE messages ("referenced manual not found") are below the level.
    if ! out=$(mandoc -T lint -W warning "$page" 2>&1) || [ -n "$out" ]; then
        fail "mandoc -T lint: $page: $out"
    fi
    lines=$(MANWIDTH=80 man -l "$page" 2>/tmp/ci-package-man.err | wc -l)
    if [ -s /tmp/ci-package-man.err ] || [ "$lines" -lt 100 ]; then
        fail "man -l $page: $lines lines, $(cat /tmp/ci-package-man.err)"
    fi
    echo "   $page: clean, $lines lines"
done
step_done

step "deb: cargo build --release, cargo deb, lintian"
cargo build --release --locked --quiet
cargo deb --no-build --quiet
# Not for the Debian archive: there is no ITP bug for the changelog to close.
status=0
out=$(lintian --fail-on error,warning --suppress-tags initial-upload-closes-no-bugs \
    --display-info "$DEB" 2>&1) || status=$?
grep -v '^running with root privileges' <<<"$out" | sed 's/^/   | /'
[ "$status" = 0 ] || fail "lintian found errors or warnings (above)"
# The copyright file is ours (DEP-5, with the licences), not one cargo-deb made.
dpkg-deb --fsys-tarfile "$DEB" | tar -xO ./usr/share/doc/preforkd/copyright |
    cmp -s - packaging/debian/copyright ||
    fail "$DEB: usr/share/doc/preforkd/copyright is not packaging/debian/copyright"
step_done

step "dpkg -i $DEB"
if dpkg-query -W preforkd >/dev/null 2>&1; then
    fail "preforkd is installed already: this must run on a fresh machine"
fi
dpkg -i "$DEB"
[ "$(dpkg-query -W -f '${Status}' preforkd)" = "install ok installed" ] ||
    fail "dpkg -i did not configure preforkd"
getent passwd preforkd >/dev/null || fail "postinst did not create the user preforkd"
step_done

step "systemd-analyze verify $UNIT $SOCKET"
out=$(systemd-analyze verify "$UNIT" "$SOCKET" 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify: $out"
systemd-analyze security --offline=true "$UNIT" 2>&1 | tail -n1
step_done

step "the installed binary serves the installed config"
/usr/sbin/preforkd check -c /etc/preforkd/preforkd.toml
installed_unit=/usr/lib/systemd/system/preforkd.service
exec_start=$(sed -n 's/^ExecStart=//p' "$installed_unit")
exec_reload=$(sed -n 's/^ExecReload=//p' "$installed_unit")
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$installed_unit")
bounding="-all"
for cap in $caps; do
    cap=${cap#CAP_}
    bounding+=",+${cap,,}"
done
# What systemd does before ExecStart: RuntimeDirectory=preforkd, then the
# command with the unit's capability bounding set and NoNewPrivileges=.
mkdir -p /run/preforkd
log=$(mktemp)
# shellcheck disable=SC2086 # ExecStart is words, as systemd splits it.
setpriv --bounding-set "$bounding" --no-new-privs $exec_start 2>"$log" &
daemon=$!
stop_daemon() { kill -KILL "$daemon" 2>/dev/null || true; }
trap stop_daemon EXIT
for _ in $(seq 100); do
    grep -q 'running with' "$log" && break
    kill -0 "$daemon" 2>/dev/null || fail "preforkd exited: $(cat "$log")"
    sleep 0.1
done
grep -q 'running with' "$log" || fail "preforkd not running within 10 s: $(cat "$log")"
answer=$(timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/7007
    printf "hello from CI\n" >&3
    head -n1 <&3') || true
[ "$answer" = "hello from CI" ] || fail "echo on 127.0.0.1:7007 answered '$answer': $(cat "$log")"
users=$(ps -o user= --ppid "$daemon" | sort -u | tr '\n' ' ')
[ "$users" = "preforkd " ] || fail "the workers run as '$users', not preforkd"
/usr/sbin/preforkd status >/dev/null || fail "preforkd status: $(cat "$log")"
# shellcheck disable=SC2086
$exec_reload || fail "ExecReload ($exec_reload) failed: $(cat "$log")"
kill -TERM "$daemon"
status=0
wait "$daemon" || status=$?
trap - EXIT
[ "$status" = 0 ] || fail "preforkd exited $status after SIGTERM: $(cat "$log")"
! pgrep -u preforkd >/dev/null || fail "processes of preforkd outlived the master"
sed 's/^/   | /' "$log"
rm -rf /run/preforkd "$log"
step_done

step "dpkg --purge preforkd"
files=$(dpkg -L preforkd)
dpkg --purge preforkd
left=()
while IFS= read -r path; do
    [ -e "$path" ] || [ -L "$path" ] || continue
    # A directory the package shared with others (/usr/sbin, ...) stays.
    if [ -d "$path" ] && [ ! -L "$path" ] && dpkg -S "$path" >/dev/null 2>&1; then
        continue
    fi
    left+=("$path")
done <<<"$files"
while IFS= read -r path; do
    left+=("$path")
done < <(find /etc/systemd /var/lib/systemd -name '*preforkd*' 2>/dev/null)
getent passwd preforkd >/dev/null && left+=("user preforkd")
getent group preforkd >/dev/null && left+=("group preforkd")
[ ${#left[@]} -eq 0 ] || fail "left behind by dpkg --purge: ${left[*]}"
echo "   $(wc -l <<<"$files") paths of the package checked: gone, or directories of other packages"
step_done

step "rpm: rpmbuild -bb packaging/rpm/preforkd.spec"
top=$(mktemp -d)
mkdir -p "$top/SOURCES"
# The source tree as `git archive` would make it, with uncommitted changes.
git ls-files -z --cached --others --exclude-standard |
    tar --null -T - --transform "s,^,preforkd-$VERSION/," \
        -czf "$top/SOURCES/preforkd-$VERSION.tar.gz"
cargo vendor --locked --quiet "$top/vendor" >/dev/null
tar -C "$top" -czf "$top/SOURCES/preforkd-$VERSION-vendor.tar.gz" vendor
cp packaging/rpm/preforkd.sysusers "$top/SOURCES/"
# --nodeps: the BuildRequires are Fedora packages; here cargo comes from
# rustup. Debian's brp-compress needs bash but says #!/bin/sh.
rpmbuild -bb --nodeps --quiet --define "_topdir $top" \
    --define '__brp_compress bash %{_rpmconfigdir}/brp-compress %{?_prefix}' \
    packaging/rpm/preforkd.spec
rpm=$(find "$top/RPMS" -name "preforkd-$VERSION-*.rpm" ! -name '*debug*' -print -quit)
[ -n "$rpm" ] || fail "rpmbuild made no package"
# The list is read whole before grep looks at it: `rpm | grep -q` fails
# under pipefail when grep exits early and rpm dies of SIGPIPE.
listing=$(rpm -qlp "$rpm")
grep -qx /usr/sbin/preforkd <<<"$listing" || fail "$rpm has no /usr/sbin/preforkd"
for licence in LICENSE-MIT LICENSE-APACHE; do
    # /usr/share/licenses/preforkd/ on Fedora; Debian's rpm adds -VERSION.
    grep -Eq "/licenses/preforkd(-$VERSION)?/$licence\$" <<<"$listing" || fail "$rpm has no %license $licence"
done
sed 's/^/   | /' <<<"$listing"
echo "   $(cd "$top/RPMS" && find . -name '*.rpm' -printf '%f ')"
rm -rf "$top"
step_done
