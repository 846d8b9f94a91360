#!/usr/bin/env bash
# make demo-vault: the just-in-time flow of `make demo`, but the CA key lives
# in a real Vault (bin/vault, dev mode, in memory) and jit-ssh logs in to it
# with AppRole, as a production server would. Everything it starts lives in
# one temporary directory and is stopped and removed at the end, on Ctrl-C,
# or on failure.
set -euo pipefail

NAME=demo-vault
# shellcheck source=test/demo/lib.sh
source "$(dirname "$0")/lib.sh"
VAULT=${VAULT:-$(pwd)/bin/vault}
[ -x "$VAULT" ] || { echo "demo-vault: $VAULT not found; run 'make vault' first" >&2; exit 1; }
# The Vault CLI of the operator: root token of the dev server, never the
# jit-ssh server's own credentials.
vault_cli() { VAULT_ADDR=$VAULT_ADDR VAULT_TOKEN=$ROOT_TOKEN "$VAULT" "$@"; }

step "1. Start a real Vault (dev mode: in memory, unsealed, root token made up for this demo)"
VPORT=$(free_port)
export VAULT_ADDR=http://127.0.0.1:$VPORT
ROOT_TOKEN=root-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
show "vault server -dev -dev-listen-address=127.0.0.1:$VPORT"
mkdir -p "$TMP/vault-home"
env -i PATH="$PATH" HOME="$TMP/vault-home" VAULT_DISABLE_MLOCK=true CHECKPOINT_DISABLE=1 \
  "$VAULT" server -dev -dev-root-token-id="$ROOT_TOKEN" -dev-listen-address="127.0.0.1:$VPORT" \
  -dev-no-store-token -log-level=warn >"$TMP/vault.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 300); do vault_cli status >/dev/null 2>&1 && break; sleep 0.1; done
vault_cli status >/dev/null || { cat "$TMP/vault.log" >&2; exit 1; }
UNSEAL_KEY=$(sed -n 's/^Unseal Key: //p' "$TMP/vault.log")
say "Vault is up at $VAULT_ADDR."

step "2. The jit-ssh server's config: signer.type vault, AppRole login, the demo directory of users and host groups"
mkdir -p "$TMP/approle" && chmod 700 "$TMP/approle"
PORT=$(free_port)
cat >"$TMP/config.yaml" <<CONF
listen: 127.0.0.1:$PORT
data_dir: $TMP/data
signer:
  type: vault
  vault:
    address: $VAULT_ADDR
    mount: ssh
    role: jit-ssh
    timeout: 2s
    approle: {role_id_file: $TMP/approle/role-id, secret_id_file: $TMP/approle/secret-id}
identity:
  type: static
  static:
    users:
      alice: {token: dev-alice, teams: [backend]}
      bob: {token: dev-bob, teams: [sre-leads]}
      carol: {token: dev-carol, teams: [security]}
auditors: [security]
host_groups:
  prod-db:
    principals: [prod-db]
    requesters: [backend]
    approvers: [sre-leads]
    approvals_required: 1
    max_duration: 1h
    cert_ttl: 5m
    extensions: [permit-pty]
CONF
sed -n '/^signer:/,/^identity:/p' "$TMP/config.yaml" | sed '$d' | indent

step "3. An operator runs 'jit-ssh vault setup' (with their own Vault token): mount, CA key, role"
show "VAULT_ADDR=$VAULT_ADDR VAULT_TOKEN=<operator token> jit-ssh vault setup --config config.yaml"
VAULT_TOKEN=$ROOT_TOKEN "$JIT" vault setup --config "$TMP/config.yaml" 2>&1 | indent
say "Running it again changes nothing:"
VAULT_TOKEN=$ROOT_TOKEN "$JIT" vault setup --config "$TMP/config.yaml" 2>&1 >/dev/null | indent
say "The role it wrote (defence in depth: only these principals, TTLs and extensions, user certs only):"
vault_cli read -format=json ssh/roles/jit-ssh | sed -n 's/^ *"\(allowed_users\|allowed_extensions\|max_ttl\|allow_host_certificates\|allow_user_certificates\|default_user\)": \(.*\),$/\1 = \2/p' | indent

step "4. The server's own Vault identity: an AppRole whose policy can only sign and read the CA key"
show "jit-ssh vault setup --config config.yaml --print-policy"
"$JIT" vault setup --config "$TMP/config.yaml" --print-policy | tee "$TMP/jit-ssh.hcl" | indent
vault_cli policy write jit-ssh "$TMP/jit-ssh.hcl" >/dev/null
vault_cli auth enable approle >/dev/null
vault_cli write auth/approle/role/jit-ssh token_policies=jit-ssh token_ttl=1h token_max_ttl=4h >/dev/null
(umask 077
 vault_cli read -field=role_id auth/approle/role/jit-ssh/role-id >"$TMP/approle/role-id"
 vault_cli write -f -field=secret_id auth/approle/role/jit-ssh/secret-id >"$TMP/approle/secret-id")
say "Role ID and secret ID are in $TMP/approle (mode 0600); the config names the files, never the values."

step "5. Start jit-ssh serve: it logs in with AppRole (no VAULT_TOKEN) and signs through Vault"
show "jit-ssh serve --config config.yaml"
env -u VAULT_TOKEN "$JIT" serve --config "$TMP/config.yaml" >"$TMP/server.log" 2>&1 &
PIDS+=($!)
export JIT_SSH_SERVER=http://127.0.0.1:$PORT
for _ in $(seq 100); do "$JIT" ca pubkey >/dev/null 2>&1 && break; sleep 0.1; done
"$JIT" ca pubkey >/dev/null || { cat "$TMP/server.log" >&2; exit 1; }
show "jit-ssh ca pubkey        # what hosts trust: the key Vault holds"
"$JIT" ca pubkey | indent
VAULT_CA_FP=$(curl -fsS "$VAULT_ADDR/v1/ssh/public_key" 2>/dev/null | ssh-keygen -lf - 2>/dev/null | awk '{print $2}' || true)
if [ -z "$VAULT_CA_FP" ]; then
  VAULT_CA_FP=$(vault_cli read -field=public_key ssh/config/ca | ssh-keygen -lf - | awk '{print $2}')
fi
say "Vault publishes the CA key $VAULT_CA_FP at $VAULT_ADDR/v1/ssh/public_key."

step "6. A throwaway prod-db host: an sshd on loopback that trusts the CA only through 'jit-ssh host config'"
show "jit-ssh host config --group prod-db --user $LOGIN --dir $TMP/host"
"$JIT" host config --group prod-db --user "$LOGIN" --dir "$TMP/host" | indent
SPORT=$(free_port)
start_sshd "$SPORT"
export SSH_AUTH_SOCK=$TMP/agent.sock
ssh-agent -D -a "$SSH_AUTH_SOCK" >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -S "$SSH_AUTH_SOCK" ] && break; sleep 0.1; done
say "sshd on 127.0.0.1:$SPORT; alice's ssh-agent is empty: nobody has standing access."

step "7. alice asks for prod-db; bob approves; Vault signs her certificate"
show "JIT_SSH_TOKEN=dev-alice jit-ssh login prod-db --reason 'demo: rotate a replica'"
JIT_SSH_TOKEN=dev-alice "$JIT" login prod-db --reason "demo: rotate a replica" --timeout 2m \
  > >(indent alice) 2> >(indent alice >&2) &
LOGIN_PID=$!
PIDS+=($LOGIN_PID)
for _ in $(seq 100); do
  ID=$(JIT_SSH_TOKEN=dev-bob "$JIT" request list --reviewable -o json | sed -n 's/.*"id":"\(r-[a-z2-7]*\)".*/\1/p' | head -1)
  [ -n "$ID" ] && break; sleep 0.1
done
[ -n "${ID:-}" ] || { echo "demo-vault: the request never reached bob" >&2; exit 1; }
show "JIT_SSH_TOKEN=dev-bob jit-ssh review $ID --approve -m 'ok'"
JIT_SSH_TOKEN=dev-bob "$JIT" review "$ID" --approve -m "ok" | indent bob
wait "$LOGIN_PID"

step "8. Plain ssh into the prod-db host, and the certificate's signer"
write_ssh_config "$SPORT"
ssh_prod() { ssh -F "$TMP/ssh_config" prod-db-demo "$@"; }
show "ssh -F $TMP/ssh_config prod-db-demo 'echo \"hello from \$(hostname) as \$(whoami)\"'"
ssh_prod 'echo "hello from $(hostname) as $(whoami)"' | indent
JIT_SSH_TOKEN=dev-carol "$JIT" audit certs -o json | sed -n 's/.*"certificate":"\([^"]*\)".*/\1/p' | tail -1 >"$TMP/cert.pub"
show "ssh-keygen -L -f cert.pub"
ssh-keygen -L -f "$TMP/cert.pub" | sed -n '/Principals/{p;n;p;};/Type\|Signing CA\|Key ID\|Serial\|Valid/p' | indent
grep -q "Signing CA: ED25519 $VAULT_CA_FP" <(ssh-keygen -L -f "$TMP/cert.pub") \
  || { echo "demo-vault: the certificate is not signed by Vault's CA key" >&2; exit 1; }
say "Signed by $VAULT_CA_FP: the key that never left Vault."

step "9. Fail closed: Vault is sealed, so no certificate is issued, and the refusal is in the ledger"
show "vault operator seal"
vault_cli operator seal | indent
show "JIT_SSH_TOKEN=dev-alice jit-ssh login prod-db"
if JIT_SSH_TOKEN=dev-alice "$JIT" login prod-db > >(indent alice) 2> >(indent alice >&2); then
  echo "demo-vault: a login succeeded while Vault was sealed" >&2; exit 1
fi
sleep 0.2
show "vault operator unseal <key>"
vault_cli operator unseal "$UNSEAL_KEY" >/dev/null
say "Vault is unsealed; jit-ssh recovers without a restart:"
JIT_SSH_TOKEN=dev-alice "$JIT" login prod-db > >(indent alice) 2> >(indent alice >&2)
sleep 0.2
ssh_prod 'echo "hello again from $(hostname)"' | indent

step "10. carol (auditor) sees every certificate Vault signed and the refused issuance"
show "JIT_SSH_TOKEN=dev-carol jit-ssh audit certs"
JIT_SSH_TOKEN=dev-carol "$JIT" audit certs | indent
show "JIT_SSH_TOKEN=dev-carol jit-ssh audit events | grep certificate"
JIT_SSH_TOKEN=dev-carol "$JIT" audit events | grep -i "certificate" | indent

step "Done. Stopping jit-ssh, sshd, the agent and Vault, and removing $TMP."
