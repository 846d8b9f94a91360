package api

// DefaultListen is the address the server listens on when its config (or
// --listen) names none: loopback, the dev server's address.
const DefaultListen = "127.0.0.1:7443"

// DefaultServerURL is where the client looks for a server when it is told
// of none: the dev server at DefaultListen.
const DefaultServerURL = "http://" + DefaultListen
