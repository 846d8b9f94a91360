package ca

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// MinRSABits is the smallest RSA subject key the profile accepts.
const MinRSABits = 3072

// maxKeyLine bounds the size of a public key line accepted from a client.
const maxKeyLine = 16 << 10

// ParseSubjectKey parses a single public key in authorized_keys form (as
// written by ssh-keygen: "type base64 [comment]") and checks it against the
// profile. Options, several keys, and certificates are refused.
func ParseSubjectKey(line string) (ssh.PublicKey, error) {
	if len(line) > maxKeyLine {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrBadKey, maxKeyLine)
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return nil, fmt.Errorf("%w: empty", ErrBadKey)
	}
	if strings.ContainsAny(line, "\n\r\x00") {
		return nil, fmt.Errorf("%w: must be a single line", ErrBadKey)
	}
	pub, _, options, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err) //nolint:errorlint // the parser's errors are strings only
	}
	if len(options) > 0 || len(rest) > 0 {
		return nil, fmt.Errorf("%w: options or extra keys are not allowed", ErrBadKey)
	}
	if err := CheckSubjectKey(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// CheckSubjectKey returns an error wrapping ErrKeyType unless pub is one of
// the key types of SPEC section 6: ed25519, ECDSA P-256/384/521, RSA of at
// least MinRSABits, or a FIDO sk- variant.
func CheckSubjectKey(pub ssh.PublicKey) error {
	if pub == nil {
		return fmt.Errorf("%w: no key", ErrBadKey)
	}
	if _, ok := pub.(*ssh.Certificate); ok {
		return fmt.Errorf("%w: a certificate is not a public key; send the plain key", ErrKeyType)
	}
	switch t := pub.Type(); t {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256,
		ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
		if cp, ok := pub.(ssh.CryptoPublicKey); ok {
			if k, ok := cp.CryptoPublicKey().(*ecdsa.PublicKey); ok && k.Curve == nil {
				return fmt.Errorf("%w: ecdsa key without a curve", ErrKeyType)
			}
		}
		return nil
	case ssh.KeyAlgoRSA:
		cp, ok := pub.(ssh.CryptoPublicKey)
		if !ok {
			return fmt.Errorf("%w: unreadable rsa key", ErrKeyType)
		}
		k, ok := cp.CryptoPublicKey().(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%w: unreadable rsa key", ErrKeyType)
		}
		if bits := k.N.BitLen(); bits < MinRSABits {
			return fmt.Errorf("%w: rsa key of %d bits; at least %d are required (ed25519 is preferred)", ErrKeyType, bits, MinRSABits)
		}
		return nil
	case ssh.KeyAlgoDSA: //nolint:staticcheck // named to refuse it
		return fmt.Errorf("%w: dsa keys are refused; use ed25519", ErrKeyType)
	default:
		return fmt.Errorf("%w: %q; use ed25519, ecdsa, rsa (>= %d bits) or an sk- key", ErrKeyType, t, MinRSABits)
	}
}

// Fingerprint returns the SHA256 fingerprint of a key as ssh-keygen prints it.
func Fingerprint(pub ssh.PublicKey) string { return ssh.FingerprintSHA256(pub) }
