#!/usr/bin/env bash
# make demo: the whole just-in-time flow on the embedded default, on this
# machine, with real OpenSSH. Everything it starts lives in one temporary
# directory and is stopped and removed at the end, on Ctrl-C, or on failure.
set -euo pipefail

NAME=demo
# shellcheck source=test/demo/lib.sh
source "$(dirname "$0")/lib.sh"

step "1. Start the jit-ssh server on the embedded default (dev mode)"
say "A file CA key, a SQLite ledger and a demo directory of users and host groups, all in $TMP/data."
show "jit-ssh serve --dev --listen 127.0.0.1:0 --data-dir $TMP/data"
"$JIT" serve --dev --listen 127.0.0.1:0 --data-dir "$TMP/data" >"$TMP/server.out" 2>"$TMP/server.log" &
PIDS+=($!)
for _ in $(seq 100); do grep -q "dev server at" "$TMP/server.out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^jit-ssh dev server at \([^ ]*\).*/\1/p' "$TMP/server.out")
[ -n "$URL" ] || { cat "$TMP/server.log" >&2; exit 1; }
sed 's/^/    | /' "$TMP/server.out"
export JIT_SSH_SERVER=$URL

step "2. Set up a throwaway prod-db host: an sshd on loopback that trusts the CA only through 'jit-ssh host config'"
show "jit-ssh host config --group prod-db --user $LOGIN --dir $TMP/host"
"$JIT" host config --group prod-db --user "$LOGIN" --dir "$TMP/host" | sed 's/^/    | /'
say "The drop-in it wrote:"
sed 's/^/    | /' "$TMP/host/jit-ssh.conf"
PORT=$(free_port)
start_sshd "$PORT"
say "sshd is listening on 127.0.0.1:$PORT; no authorized_keys, no passwords: only jit-ssh certificates get in."

step "3. Start a private ssh-agent for the engineer"
export SSH_AUTH_SOCK=$TMP/agent.sock
ssh-agent -D -a "$SSH_AUTH_SOCK" >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -S "$SSH_AUTH_SOCK" ] && break; sleep 0.1; done
say "SSH_AUTH_SOCK=$SSH_AUTH_SOCK (empty: nobody has standing access)"

step "4. alice (team backend) runs 'jit-ssh login prod-db'; prod-db needs one approval from sre-leads"
show "JIT_SSH_TOKEN=dev-alice jit-ssh login prod-db --reason 'demo: check replication lag'"
JIT_SSH_TOKEN=dev-alice "$JIT" login prod-db --reason "demo: check replication lag" --timeout 2m \
  > >(sed -u 's/^/    alice| /') 2> >(sed -u 's/^/    alice| /' >&2) &
LOGIN_PID=$!
PIDS+=($LOGIN_PID)

step "5. bob (team sre-leads) sees the request and approves it, like a pull-request review"
for _ in $(seq 100); do
  ID=$(JIT_SSH_TOKEN=dev-bob "$JIT" request list --reviewable -o json | sed -n 's/.*"id":"\(r-[a-z2-7]*\)".*/\1/p' | head -1)
  [ -n "$ID" ] && break; sleep 0.1
done
[ -n "${ID:-}" ] || { echo "demo: the request never reached bob" >&2; exit 1; }
show "JIT_SSH_TOKEN=dev-bob jit-ssh request list --reviewable"
JIT_SSH_TOKEN=dev-bob "$JIT" request list --reviewable | sed 's/^/    bob| /'
sleep 1
show "JIT_SSH_TOKEN=dev-bob jit-ssh review $ID --approve -m 'ok, go ahead'"
JIT_SSH_TOKEN=dev-bob "$JIT" review "$ID" --approve -m "ok, go ahead" | sed 's/^/    bob| /'

step "6. alice's login completes: a fresh key and a 5-minute certificate are in her agent"
wait "$LOGIN_PID"
show "ssh-add -l"
ssh-add -l | sed 's/^/    | /'

step "7. Plain ssh into the prod-db host"
write_ssh_config "$PORT"
show "ssh -F $TMP/ssh_config prod-db-demo 'echo \"hello from \$(hostname) as \$(whoami)\"'"
ssh -F "$TMP/ssh_config" prod-db-demo 'echo "hello from $(hostname) as $(whoami)"' | sed 's/^/    | /'
say "sshd logged the certificate's evidence (who, which group, which request, approved by whom):"
grep "Accepted publickey" "$TMP/sshd.log" | sed 's/^/    | /'

step "8. carol (team security, auditor) lists what was issued"
show "JIT_SSH_TOKEN=dev-carol jit-ssh audit certs"
JIT_SSH_TOKEN=dev-carol "$JIT" audit certs | sed 's/^/    | /'

step "Done. Stopping the server, sshd and the agent, and removing $TMP."
