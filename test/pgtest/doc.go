// Package pgtest starts a throwaway PostgreSQL server for tests, from
// Debian's postgresql package (/usr/lib/postgresql/N/bin, or the directory
// JIT_SSH_PG_BIN names): initdb into a fresh temporary directory, the
// server on a free loopback port with its unix socket in that directory,
// password authentication over TCP, fsync and synchronous_commit on (the
// settings a ledger relies on), stopped and removed in t.Cleanup. As root
// (PostgreSQL refuses to run as root) the cluster is owned by and run as
// the unprivileged user nobody.
//
// Like the other helpers that start real programs (test/testenv,
// test/vaulttest), it skips under -short, and when PostgreSQL is not
// installed it skips, or fails with CI=true.
package pgtest
