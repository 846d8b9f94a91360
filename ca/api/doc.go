// Package api is jit-ssh's HTTP service (SPEC section 5) and its Go client.
// The server is a plain net/http ServeMux with method+path patterns; every
// error is a JSON object {"error": {"code", "message"}} with the status the
// SPEC names. Listings of certificates stream as NDJSON, one object a line.
//
// Handlers only translate: each decodes the call, makes one call to a use
// case of package approval (Service for requests and reviews, Authority for
// certificates, revocations, the KRL and the audit log), which decides, and
// encodes the answer; approval.Failure's kinds map to statuses here.
package api
