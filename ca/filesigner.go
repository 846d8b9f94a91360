package ca

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"
)

// FileSigner signs with a CA private key held in a file. It is the signer of
// the embedded default and of small deployments; production keeps the key
// in Vault (ca/vault).
type FileSigner struct {
	signer ssh.Signer
	rand   io.Reader
}

var _ Signer = (*FileSigner)(nil)

// NewFileSigner returns a Signer around s. RSA keys sign with rsa-sha2-512.
func NewFileSigner(s ssh.Signer) (*FileSigner, error) {
	if s.PublicKey().Type() == ssh.KeyAlgoRSA {
		as, ok := s.(ssh.AlgorithmSigner)
		if !ok {
			return nil, errors.New("ca: rsa signer cannot choose its algorithm")
		}
		ms, err := ssh.NewSignerWithAlgorithms(as, []string{ssh.KeyAlgoRSASHA512})
		if err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
		s = ms
	}
	return &FileSigner{signer: s, rand: rand.Reader}, nil
}

// LoadOrCreateFileSigner reads the OpenSSH private key at path. When the
// file does not exist it generates an ed25519 key and writes it with mode
// 0600 (the directory is created 0700). A key file that group or others can
// read is refused.
func LoadOrCreateFileSigner(path string) (*FileSigner, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createKey(path); err != nil {
			return nil, err
		}
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("ca: reading CA key: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("ca: CA key %s has mode %04o; it must not be readable by group or others (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	s, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("ca: parsing CA key %s: %w", path, err)
	}
	return NewFileSigner(s)
}

func createKey(path string) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("ca: generating CA key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "jit-ssh CA")
	if err != nil {
		return fmt.Errorf("ca: encoding CA key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("ca: creating CA key: %w", err)
	}
	if _, err := f.Write(pem.EncodeToMemory(block)); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("ca: writing CA key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("ca: writing CA key: %w", err)
	}
	return f.Close()
}

// Sign signs tmpl with the file key, in this process: an Issuer built with
// WithInProcessSigner does not check the signature again.
func (f *FileSigner) Sign(_ context.Context, tmpl *ssh.Certificate) (*ssh.Certificate, error) {
	c := *tmpl
	if err := c.SignCert(f.rand, f.signer); err != nil {
		return nil, fmt.Errorf("ca: signing: %w", err)
	}
	return &c, nil
}

// DataSigner returns the CA key as an ssh.Signer for signing data that is
// not a certificate: the ledger's checkpoints, which are signed as SSHSIG
// under their own namespace so they can never pass for a certificate.
func (f *FileSigner) DataSigner() ssh.Signer { return f.signer }

// PublicKeys returns the file key's public half.
func (f *FileSigner) PublicKeys(context.Context) ([]ssh.PublicKey, error) {
	return []ssh.PublicKey{f.signer.PublicKey()}, nil
}
