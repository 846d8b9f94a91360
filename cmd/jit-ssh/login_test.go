package main

import (
	"bytes"
	"testing"

	"golang.org/x/crypto/ssh"
)

// The key made in the background is a usable ed25519 pair, the same one on
// every get, and a fresh one for every login.
func TestGenerateKey(t *testing.T) {
	k := generateKey()
	priv, pub, err := k.get()
	if err != nil {
		t.Fatal(err)
	}
	if pub.Type() != ssh.KeyAlgoED25519 {
		t.Fatalf("key type %s, want %s", pub.Type(), ssh.KeyAlgoED25519)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(signer.PublicKey().Marshal(), pub.Marshal()) {
		t.Fatal("the public key does not belong to the private key")
	}
	sig, err := signer.Sign(nil, []byte("data"))
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Verify([]byte("data"), sig); err != nil {
		t.Fatalf("signature by the private key does not verify with the public key: %v", err)
	}
	priv2, pub2, err := k.get()
	if err != nil || !priv2.Equal(priv) || !bytes.Equal(pub2.Marshal(), pub.Marshal()) {
		t.Fatal("a second get returned another key")
	}
	_, other, err := generateKey().get()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(other.Marshal(), pub.Marshal()) {
		t.Fatal("two logins got the same key")
	}
}
