// Package sshsig signs and verifies data in OpenSSH's SSHSIG format
// (PROTOCOL.sshsig), armored as ssh-keygen -Y sign writes it, so that what
// jit-ssh signs (the ledger's checkpoints) can also be checked with stock
// tools: ssh-keygen -Y check-novalidate -n NAMESPACE. It imports only
// golang.org/x/crypto/ssh.
//
// It is our own code rather than github.com/hiddeco/sshsig (which
// interoperates with ssh-keygen too): that library armors with PEM's
// 64-column lines where ssh-keygen and this package use 70, and its
// errors differ, so it would change the bytes of every new checkpoint
// signature and the problems `jit-ssh audit verify` reports. The error
// texts here have no package prefix for the same reason: they appear,
// unchanged since before this package, inside the audit's messages.
package sshsig

import (
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

const (
	magic   = "SSHSIG"
	hashAlg = "sha512"
	armorHd = "-----BEGIN SSH SIGNATURE-----"
	armorFt = "-----END SSH SIGNATURE-----"
	// armorWidth is the line length of the armored base64, as ssh-keygen
	// writes it.
	armorWidth = 70
)

// signedData is what the signature covers, after the magic preamble.
type signedData struct {
	Namespace string
	Reserved  string
	HashAlg   string
	Hash      []byte
}

// blob is the signature, after the magic preamble.
type blob struct {
	Version   uint32
	PublicKey []byte
	Namespace string
	Reserved  string
	HashAlg   string
	Signature []byte
}

func data(namespace string, msg []byte) []byte {
	h := sha512.Sum512(msg)
	return append([]byte(magic), ssh.Marshal(signedData{Namespace: namespace, HashAlg: hashAlg, Hash: h[:]})...)
}

// Sign signs msg with s in namespace and returns the armored SSHSIG
// (SHA-512), as ssh-keygen -Y sign -n namespace writes it. Randomness, for
// the key types that use it, comes from crypto/rand.
func Sign(s ssh.Signer, namespace string, msg []byte) (string, error) {
	sig, err := sign(s, data(namespace, msg))
	if err != nil {
		return "", err
	}
	raw := append([]byte(magic), ssh.Marshal(blob{
		Version: 1, PublicKey: s.PublicKey().Marshal(), Namespace: namespace, HashAlg: hashAlg, Signature: ssh.Marshal(sig),
	})...)
	b64 := base64.StdEncoding.EncodeToString(raw)
	var sb strings.Builder
	sb.WriteString(armorHd + "\n")
	for len(b64) > armorWidth {
		sb.WriteString(b64[:armorWidth] + "\n")
		b64 = b64[armorWidth:]
	}
	sb.WriteString(b64 + "\n" + armorFt + "\n")
	return sb.String(), nil
}

// sign signs d with s. An RSA key signs with rsa-sha2-512, as
// PROTOCOL.sshsig requires and ssh-keygen does: its plain Sign would make
// an ssh-rsa (SHA-1) signature, which ssh-keygen -Y verify refuses.
func sign(s ssh.Signer, d []byte) (*ssh.Signature, error) {
	if as, ok := s.(ssh.AlgorithmSigner); ok && s.PublicKey().Type() == ssh.KeyAlgoRSA {
		return as.SignWithAlgorithm(rand.Reader, d, ssh.KeyAlgoRSASHA512)
	}
	return s.Sign(rand.Reader, d)
}

// Verify checks an armored SSHSIG over msg in namespace and returns the
// key that made it. Only version 1 with SHA-512 is accepted (what Sign
// makes and ssh-keygen makes by default). Deciding whether that key is
// trusted is the caller's business.
func Verify(armored, namespace string, msg []byte) (ssh.PublicKey, error) {
	s := strings.TrimSpace(armored)
	if !strings.HasPrefix(s, armorHd) || !strings.HasSuffix(s, armorFt) {
		return nil, errors.New("not an armored SSH signature")
	}
	s = strings.Join(strings.Fields(strings.TrimSuffix(strings.TrimPrefix(s, armorHd), armorFt)), "")
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || !bytes.HasPrefix(raw, []byte(magic)) {
		return nil, errors.New("malformed SSH signature")
	}
	var b blob
	if err := ssh.Unmarshal(raw[len(magic):], &b); err != nil {
		return nil, fmt.Errorf("malformed SSH signature: %w", err)
	}
	if b.Version != 1 || b.Namespace != namespace || b.HashAlg != hashAlg {
		return nil, fmt.Errorf("SSH signature version %d, namespace %q, hash %q; want 1, %q, %q", b.Version, b.Namespace, b.HashAlg, namespace, hashAlg)
	}
	pub, err := ssh.ParsePublicKey(b.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("SSH signature key: %w", err)
	}
	var sig ssh.Signature
	if err := ssh.Unmarshal(b.Signature, &sig); err != nil {
		return nil, fmt.Errorf("malformed SSH signature: %w", err)
	}
	if err := pub.Verify(data(namespace, msg), &sig); err != nil {
		return nil, err
	}
	return pub, nil
}
