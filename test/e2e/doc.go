// Package e2e holds jit-ssh's end-to-end tests: the built binary, a real
// ssh-agent, real sshd processes configured only through `jit-ssh host
// config`, the real ssh client and ssh-keygen, and real SQLite files.
// In CI (CI=true) a missing OpenSSH binary fails these tests; they never
// skip there. Under -short (make test-short) the whole suite is skipped
// (TestMain).
package e2e
