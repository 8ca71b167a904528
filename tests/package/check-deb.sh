#!/usr/bin/env bash
# Builds the .debs with CPack from this build, inspects them as dpkg sees them, then installs,
# upgrades, removes and purges the daemon's package in a scratch root — never on this machine:
# dpkg --root with chrootless maintainer scripts (they act under $DPKG_ROOT), under fakeroot,
# and as an unprivileged user when run as root, so a path that escaped the root would fail
# rather than change the host. systemctl and deb-systemd-invoke are stand-ins that record
# their calls; the scratch root has /run/systemd/system, as a machine booted with systemd has.
#   check-deb.sh BUILD_DIR
set -euo pipefail
# The daemon reads CALLBACKD_* as configuration (the test run exports CALLBACKD_TEST_POSTGRES).
while read -r variable; do unset "$variable"; done < <(compgen -e | grep '^CALLBACKD_' || true)
build=$1
scratch=$(mktemp -d /tmp/callbackd-deb-XXXXXX)
trap 'rm -rf "$scratch"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
has_line() { grep -qx -- "$2" <<<"$1" || fail "${3:-missing line}: $2"; }

start=$SECONDS
# zstd rather than the packages' gzip: half the time on the ASan build's 250 MB (nothing here
# depends on the compression; dpkg 1.21 reads both).
cpack -G DEB --config "$build/CPackConfig.cmake" -B "$scratch/out" \
  -D CPACK_DEBIAN_COMPRESSION_TYPE=zstd >"$scratch/cpack.log" 2>&1 ||
  { cat "$scratch/cpack.log"; fail "cpack -G DEB"; }
deb=$(ls "$scratch"/out/callbackd_*.deb)
dev=$(ls "$scratch"/out/libcallbackd-dev_*.deb)
echo "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB) and $(basename "$dev") in $((SECONDS - start)) s"

# Control fields: the dependencies dpkg-shlibdeps found for the daemon's shared libraries.
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for library in libc6 libcurl4 libsqlite3-0 libssl3 libpq5 libspdlog libtomlplusplus3 passwd; do
  [[ ", $depends" == *", $library"* ]] || fail "Depends lacks $library"
done
[[ $(dpkg-deb -f "$deb" Package) == callbackd ]] || fail "package name"

# Files: the daemon, its unit, its configuration (a conffile), no development files.
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for path in ./usr/bin/callbackd ./lib/systemd/system/callbackd.service \
  ./etc/callbackd/callbackd.toml ./usr/share/doc/callbackd/README.md; do
  has_line "$contents" "$path" "not in $(basename "$deb")"
done
! grep -q '^./usr/include\|\.a$' <<<"$contents" || fail "development files in the daemon package"
dpkg-deb -e "$deb" "$scratch/control"
has_line "$(cat "$scratch/control/conffiles")" /etc/callbackd/callbackd.toml "conffiles lacks"
for script in postinst prerm postrm; do
  [[ -x "$scratch/control/$script" ]] || fail "no executable $script"
  sh -n "$scratch/control/$script" || fail "$script is not valid sh"
done
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./lib/systemd/system/callbackd.service >"$scratch/unit"
for line in "ExecStart=/usr/bin/callbackd serve --config /etc/callbackd/callbackd.toml" \
  User=callbackd StateDirectory=callbackd StateDirectoryMode=0700 WantedBy=multi-user.target; do
  has_line "$(cat "$scratch/unit")" "$line" "the unit lacks"
done
dev_contents=$(dpkg-deb -c "$dev" | awk '{print $6}')
for path in ./usr/include/callbackd/engine.h ./usr/include/callbackd/sqlite_store.h; do
  has_line "$dev_contents" "$path" "not in $(basename "$dev")"
done
grep -Eq '^\./usr/lib/(.+/)?cmake/callbackd/callbackdConfig\.cmake$' <<<"$dev_contents" ||
  fail "no CMake package in $(basename "$dev")"
echo "contents, conffiles, maintainer scripts and unit as expected"

# A scratch root: an empty dpkg database and the account files of a fresh system.
root=$scratch/root
mkdir -p "$root"/etc "$root"/var/lib/dpkg/{info,updates,triggers} "$root"/run/systemd/system \
  "$scratch/stubs"
touch "$root"/var/lib/dpkg/{status,available}
echo 'root:x:0:0:root:/root:/bin/bash' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
echo 'root:*:19000:0:99999:7:::' >"$root/etc/shadow"
echo 'root:*::' >"$root/etc/gshadow"
cp /etc/login.defs "$root/etc/"
for tool in systemctl deb-systemd-invoke; do
  printf '#!/bin/sh\necho "%s $*" >>"%s/calls"\n' "$tool" "$scratch" >"$scratch/stubs/$tool"
  chmod +x "$scratch/stubs/$tool"
done
touch "$scratch/calls"
as_user=()
if [[ $(id -u) -eq 0 ]]; then
  chown -R 65534:65534 "$scratch"
  as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
fi
in_root() {
  env PATH="$scratch/stubs:/usr/sbin:/usr/bin:/sbin:/bin" "${as_user[@]}" \
    fakeroot -i "$scratch/fakeroot.state" -s "$scratch/fakeroot.state" -- "$@"
}
run_dpkg() {
  : >"$scratch/calls"
  in_root dpkg --root="$root" --log="$scratch/dpkg.log" --force-script-chrootless \
    --force-depends "$@" >"$scratch/dpkg.out" 2>&1 || { cat "$scratch/dpkg.out"; fail "dpkg $*"; }
}
touch "$scratch/fakeroot.state"
[[ $(id -u) -ne 0 ]] || chown 65534:65534 "$scratch/fakeroot.state"

run_dpkg --install "$deb"
user=$(grep '^callbackd:' "$root/etc/passwd") || fail "no callbackd user after install"
IFS=: read -r _ _ uid gid _ home shell <<<"$user"
((uid < 1000)) || fail "callbackd is not a system user: $user"
[[ $home == /var/lib/callbackd && $shell == /usr/sbin/nologin ]] || fail "user: $user"
grep -q "^callbackd:x:$gid:" "$root/etc/group" || fail "no callbackd group"
owner_mode=$(in_root stat -c '%u:%g %a' "$root/var/lib/callbackd")
[[ $owner_mode == "$uid:$gid 700" ]] || fail "/var/lib/callbackd is $owner_mode"
[[ -L "$root/etc/systemd/system/multi-user.target.wants/callbackd.service" ]] ||
  fail "the service is not enabled"
has_line "$(cat "$scratch/calls")" "deb-systemd-invoke start callbackd.service" "postinst did not run"
[[ -x "$root/usr/bin/callbackd" ]] || fail "no /usr/bin/callbackd"
echo "install: user $user, /var/lib/callbackd $owner_mode, enabled, started"

# The packaged binary serves with the packaged configuration (the unit's data directory aside).
"${as_user[@]}" "$root/usr/bin/callbackd" serve --config "$root/etc/callbackd/callbackd.toml" \
  --listen 127.0.0.1:0 --data-dir "$scratch/data" >"$scratch/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 300); do
  if grep -q 'event=listening' "$scratch/serve.log" || ! kill -0 "$serve_pid" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
grep -q 'event=listening' "$scratch/serve.log" ||
  { cat "$scratch/serve.log"; kill "$serve_pid" 2>/dev/null; fail "the packaged daemon did not serve"; }
kill -TERM "$serve_pid"
wait "$serve_pid" || { cat "$scratch/serve.log"; fail "the packaged daemon did not stop cleanly"; }
echo "the packaged daemon serves with the packaged configuration and stops on SIGTERM"

run_dpkg --install "$deb"
has_line "$(cat "$scratch/calls")" "deb-systemd-invoke restart callbackd.service" "upgrade did not"
(($(grep -c '^callbackd:' "$root/etc/passwd") == 1)) || fail "a second user on upgrade"
echo "upgrade: restarted, same user"

run_dpkg --remove callbackd
has_line "$(cat "$scratch/calls")" "deb-systemd-invoke stop callbackd.service" "prerm did not"
[[ ! -e "$root/usr/bin/callbackd" && -f "$root/etc/callbackd/callbackd.toml" ]] ||
  fail "remove: binary left or conffile gone"
grep -q '^callbackd:' "$root/etc/passwd" || fail "remove took the user"
echo "remove: stopped, binary gone, configuration and user kept"

run_dpkg --purge callbackd
! grep -q '^callbackd:' "$root/etc/passwd" "$root/etc/group" || fail "purge left the user"
[[ ! -e "$root/etc/callbackd/callbackd.toml" ]] || fail "purge left the configuration"
[[ ! -e "$root/etc/systemd/system/multi-user.target.wants/callbackd.service" ]] ||
  fail "purge left the service enabled"
[[ -d "$root/var/lib/callbackd" ]] || fail "purge deleted the store"
echo "purge: user, configuration and enablement gone; /var/lib/callbackd kept"
echo "PASS"
