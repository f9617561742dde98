#!/bin/sh
#
# mysql_pool_test.sh - run the store tests against a private MariaDB.
#
# Starts a throwaway server with scripts/mariadb-private, runs
# check_store and check_history (the backend-neutral suites) and
# check_store_mysql (URL, schema, pool, restarts, hangs) against it,
# then removes it.  Skipped (77) when no MariaDB server is installed.
# From the build directory:
#   sh tests/unit/mysql_pool_test.sh [BINDIR]
# BINDIR holds the three programs (default tests/unit).

srcdir=${srcdir:-$(dirname "$0")/../..}
bindir=${1:-tests/unit}
script=$srcdir/scripts/mariadb-private

if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ] &&
    [ ! -x /usr/sbin/mysqld ]; then
	if [ -n "$CI" ]; then
		echo "mysql_pool_test: FAILED: no MariaDB server installed (CI must have one)"
		exit 1
	fi
	echo "mysql_pool_test: *** SKIPPED: no MariaDB server installed ***"
	exit 77
fi

dir=$(mktemp -d /tmp/chatd-mdb.XXXXXX) || exit 1
trap '"$script" stop "$dir/m" >/dev/null 2>&1; rm -rf "$dir"' EXIT
trap 'exit 1' HUP INT TERM

env=$("$script" start "$dir/m") || exit 1
eval "$env"
export STORE_SPEC MYSQL_PORT MYSQL_SOCKET MYSQL_PASSWORD MYSQL_ROOT_PASSWORD
MDB_SCRIPT=$script MDB_DIR=$dir/m
export MDB_SCRIPT MDB_DIR

rc=0
"$bindir/check_store" || rc=1
"$bindir/check_history" || rc=1
"$bindir/check_store_mysql" || rc=1
exit $rc
