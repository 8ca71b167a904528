#!/usr/bin/env bash
# `cmake --install` of this build into a scratch prefix, then what an embedder and an operator
# would check: the files are where they belong and nothing was written outside the prefix, every
# installed header compiles on its own, the installed daemon runs, and a project of its own
# finds the package (find_package(callbackd)), builds and delivers a callback with it.
#   check-install.sh BUILD_DIR SOURCE_DIR CXX
set -euo pipefail
# The daemon reads CALLBACKD_* as configuration (the test run exports CALLBACKD_TEST_POSTGRES).
while read -r variable; do unset "$variable"; done < <(compgen -e | grep '^CALLBACKD_' || true)
build=$1 source=$2 cxx=$3
scratch=$(mktemp -d /tmp/callbackd-install-XXXXXX)
trap 'rm -rf "$scratch"' EXIT
prefix=$scratch/prefix
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >"$scratch/install.log" ||
  { cat "$scratch/install.log"; fail "cmake --install"; }
echo "installed into $prefix"

outside=$(grep -v "^$prefix/" "$build/install_manifest.txt" || true)
[[ -z "$outside" ]] || fail "installed outside the prefix: $outside"

libdir=$(cd "$prefix" && dirname "$(find lib* -name libcallbackd_engine.a)")
for file in bin/callbackd lib/systemd/system/callbackd.service etc/callbackd/callbackd.toml \
  share/doc/callbackd/README.md "$libdir"/libcallbackd_engine.a "$libdir"/libcallbackd_storage.a \
  "$libdir"/libcallbackd_storage_postgres.a "$libdir"/cmake/callbackd/callbackdConfig.cmake \
  "$libdir"/cmake/callbackd/callbackdConfigVersion.cmake; do
  [[ -f "$prefix/$file" ]] || fail "$file is not installed"
done
[[ -x "$prefix/bin/callbackd" ]] || fail "bin/callbackd is not executable"

# The unit starts the installed binary with the installed configuration.
grep -qx "ExecStart=$prefix/bin/callbackd serve --config $prefix/etc/callbackd/callbackd.toml" \
  "$prefix/lib/systemd/system/callbackd.service" || fail "unit's ExecStart does not name $prefix"
systemd-analyze verify "$prefix/lib/systemd/system/callbackd.service" ||
  fail "systemd-analyze verify rejects the installed unit"

# Exactly the public headers, each compiling alone.
expected=$(cd "$source" && ls engine/include/callbackd storage/sqlite/include/callbackd \
  storage/postgres/include/callbackd | grep '\.h$' | sort)
installed=$(ls "$prefix/include/callbackd" | sort)
[[ "$expected" == "$installed" ]] || fail "installed headers: $installed; public: $expected"
for header in $installed; do
  echo "#include <callbackd/$header>" |
    "$cxx" -std=c++20 -Wall -Wextra -Werror -fsyntax-only -I"$prefix/include" -x c++ - ||
    fail "callbackd/$header does not compile on its own"
done
echo "$(wc -w <<<"$installed") public headers compile on their own"

version=$("$prefix/bin/callbackd" --version)
[[ "$version" == "callbackd "* ]] || fail "installed callbackd --version printed: $version"
echo "installed daemon: $version"

cmake -S "$source/tests/package/consumer" -B "$scratch/consumer" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_PREFIX_PATH="$prefix" >"$scratch/configure.log" ||
  { cat "$scratch/configure.log"; fail "the consumer project does not configure"; }
cmake --build "$scratch/consumer" -j 2 >"$scratch/build.log" ||
  { cat "$scratch/build.log"; fail "the consumer project does not build"; }
mkdir "$scratch/run"
"$scratch/consumer/consumer" "$scratch/run" || fail "the consumer did not deliver"
echo "PASS"
