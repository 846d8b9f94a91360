package hostconfig

import "errors"

// Sentinel errors. Callers compare with errors.Is. Invalid logins and
// principals wrap ca.ErrInvalidName instead.
var (
	// ErrInvalidPath: a directory or file path is relative or holds a
	// character sshd_config cannot take unquoted.
	ErrInvalidPath = errors.New("hostconfig: invalid path")
	// ErrInvalidFiles: the host files are incomplete (no principals, no CA
	// keys, a certificate where a CA key belongs).
	ErrInvalidFiles = errors.New("hostconfig: invalid host files")
	// ErrNoSSHD: no sshd binary was found; the drop-in cannot be checked.
	ErrNoSSHD = errors.New("hostconfig: sshd not found")
	// ErrSSHDRejected: sshd refused the drop-in or the files it names.
	ErrSSHDRejected = errors.New("hostconfig: sshd rejected the configuration")
)
