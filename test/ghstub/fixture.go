package ghstub

import "testing"

// The organization and server token of NewAcme.
const (
	AcmeOrg         = "acme"
	AcmeServerToken = "ghs_servertoken"
)

// NewAcme is a stub with the organization AcmeOrg: alice (team backend),
// bob (sre-leads), carol (invited to sre-leads, not yet a member), each
// signing in with "gho_" + login, and the server's own bot user
// jit-ssh-bot with AcmeServerToken. The unit tests of the GitHub directory
// and of the service over it share it.
func NewAcme(t testing.TB) *Server {
	t.Helper()
	gh := New(t)
	gh.AddUser("jit-ssh-bot", AcmeServerToken)
	gh.AddUser("alice", "gho_alice")
	gh.AddUser("bob", "gho_bob")
	gh.AddUser("carol", "gho_carol")
	gh.SetTeam(AcmeOrg, "backend", "alice")
	gh.SetTeam(AcmeOrg, "sre-leads", "bob")
	gh.SetPending(AcmeOrg, "sre-leads", "carol")
	return gh
}
