// Package agent is the client side of jit-ssh: it makes ephemeral keys that
// never touch disk and loads them with their certificates into the user's
// running ssh-agent, with a lifetime equal to the certificate's remaining
// validity. It recognises its own entries by their comment, so it can
// replace or remove them without touching the user's other keys.
package agent
