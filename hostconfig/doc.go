// Package hostconfig owns the host side of jit-ssh: the files through which
// a stock sshd trusts the jit-ssh CA (SPEC section 8). For host group G and
// Unix login L it renders and writes, into one absolute directory,
//
//	jit-ssh.conf    the sshd drop-in (TrustedUserCAKeys, AuthorizedPrincipalsFile, RevokedKeys)
//	ca.pub          the CA public keys, one per line, authorized_keys format
//	principals/L    G's principals, one per line
//	revoked.krl     the OpenSSH key revocation list (created empty, never clobbered)
//
// and checks the drop-in with the real sshd (CheckWithSSHD). KRL sync
// (`jit-ssh host sync`) will live here too. Every name is validated with the
// ca package's validators before it reaches a file, and every file is
// replaced atomically so sshd never reads a half-written one.
package hostconfig
