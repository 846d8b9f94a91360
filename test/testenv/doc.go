// Package testenv starts real OpenSSH components for end-to-end tests and
// benchmarks: ssh-agent (StartAgent), an sshd configured only through
// jit-ssh's host drop-in (StartSSHD), and the ssh client (SSH). Every
// function takes a testing.TB, registers its cleanup with t.Cleanup and
// stops the processes it started.
//
// A missing OpenSSH binary skips the test with a message naming the Debian
// package to install, except when the environment variable CI is true:
// there it fails the test, so a CI image without OpenSSH cannot pass by
// skipping everything. Under -short (make test-short) every test that needs
// a real program is skipped (SkipIfShort), so -short runs unit tests only.
package testenv
