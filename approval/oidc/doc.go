// Package oidc verifies the OIDC ID tokens of GitHub Actions jobs for the
// approval service: the workload identity provider. It discovers the
// issuer (/.well-known/openid-configuration) on first use, checks each
// token's signature against the issuer's JWKS through go-oidc's remote key
// set (a token signed with a key it has not seen yet makes it fetch the
// JWKS again, so the issuer may rotate keys at any time), and checks iss,
// aud, exp, nbf, the signing algorithm (RS256 or ES256 only: no "none", no
// HMAC), that the token is not reused (its jti, remembered until it
// expires), and that every claim jit-ssh uses is well formed
// (ca.CheckWorkload). It returns the claims as a ca.Workload.
//
// Its errors wrap ca.ErrUnauthenticated (the token is refused, with the
// reason) or ca.ErrUnavailable (the issuer's discovery document or JWKS
// could not be fetched: nothing can be decided, fail closed). It needs
// only ca and go-oidc, so the service does not depend on either GitHub or
// go-oidc.
package oidc
