// Package api is jit-ssh's HTTP service (SPEC section 5) and its Go client.
// The server is a plain net/http ServeMux with method+path patterns; every
// error is a JSON object {"error": {"code", "message"}} with the status the
// SPEC names. Listings of certificates stream as NDJSON, one object a line.
package api
