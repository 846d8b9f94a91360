// Package config owns the jit-ssh server configuration (SPEC section 4):
// its types, loading a file (Load, Parse) or the embedded dev default
// (LoadDev, Dev), the defaults (taken from the packages that own them),
// command-line overrides, every key path a problem is reported at, and
// validation, which returns every problem at once or what the config
// compiles to (the host groups' approval policies, the trusted CA keys and
// the rate limits), computed once.
//
// It reads files but never the environment: what it needs from the
// environment (the GitHub token, XDG_STATE_HOME, the home directory) is
// passed in by cmd/jit-ssh.
package config
