#!/usr/bin/env bash
# make demo-ci: a GitHub Actions deploy job gets a minutes-long certificate
# with no stored secret, through its OIDC ID token, against the stand-in
# issuer (test/oidcstub: discovery, JWKS, a runner's token endpoint) on
# this machine, with real OpenSSH. Everything it starts lives in one
# temporary directory and is stopped and removed at the end.
set -euo pipefail

NAME=demo-ci
# shellcheck source=test/demo/lib.sh
source "$(dirname "$0")/lib.sh"
OIDCSTUB=${OIDCSTUB:?set OIDCSTUB to the built test/oidcstub/cmd/oidcstub}
command -v curl >/dev/null || { echo "$NAME: curl not found (apt-get install -y curl)" >&2; exit 1; }

step "1. Start the stand-in for GitHub's OIDC issuer (token.actions.githubusercontent.com)"
"$OIDCSTUB" -env "$TMP/job.env" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$TMP/job.env" ] && break; sleep 0.1; done
# shellcheck disable=SC1091
source "$TMP/job.env"
say "issuer $ISSUER: discovery at /.well-known/openid-configuration, keys at /.well-known/jwks,"
say "and the token endpoint a runner offers a job with 'permissions: id-token: write'."

step "2. Start jit-ssh with workload_identity pointing at it; web-prod lets acme/web's production deploys from main in"
cat >"$TMP/config.yaml" <<CONF
listen: 127.0.0.1:0
data_dir: $TMP/data
signer: {type: file}
identity:
  type: static
  static:
    users:
      carol: {token: dev-carol, teams: [security]}
      sam:   {token: dev-sam,   teams: [ops]}
auditors: [security]
admins: [ops]
workload_identity:
  github_actions: {issuer: "$ISSUER", audience: jit-ssh}
host_groups:
  web-prod:
    principals: [$LOGIN]
    approvals_required: 0
    max_duration: 15m
    cert_ttl: 5m
    workloads:
      - {repository: acme/web, ref: refs/heads/main, environment: production}
CONF
sed -n '/^workload_identity/,$p' "$TMP/config.yaml" | indent
PORT_API=$(free_port)
"$JIT" serve --config "$TMP/config.yaml" --listen "127.0.0.1:$PORT_API" >"$TMP/server.out" 2>"$TMP/server.log" &
PIDS+=($!)
export JIT_SSH_SERVER=http://127.0.0.1:$PORT_API
for _ in $(seq 100); do curl -fsS "$JIT_SSH_SERVER/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

step "3. A throwaway web-prod host: an sshd that trusts the CA through 'jit-ssh host config'"
"$JIT" host config --group web-prod --user "$LOGIN" --dir "$TMP/host" >/dev/null
PORT=$(free_port)
start_sshd "$PORT"
say "sshd on 127.0.0.1:$PORT; no authorized_keys: only jit-ssh certificates get in."

step "4. The deploy job: the runner's two variables in its environment, no jit-ssh token, no SSH key"
export SSH_AUTH_SOCK=$TMP/agent.sock
ssh-agent -D -a "$SSH_AUTH_SOCK" >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -S "$SSH_AUTH_SOCK" ] && break; sleep 0.1; done
show "ACTIONS_ID_TOKEN_REQUEST_URL=... ACTIONS_ID_TOKEN_REQUEST_TOKEN=... jit-ssh login web-prod --duration 10m"
ACTIONS_ID_TOKEN_REQUEST_URL=$ACTIONS_ID_TOKEN_REQUEST_URL ACTIONS_ID_TOKEN_REQUEST_TOKEN=$ACTIONS_ID_TOKEN_REQUEST_TOKEN \
  "$JIT" login web-prod --duration 10m 2>&1 | indent job

step "5. The job deploys with plain ssh; sshd logs the KeyId, which names the workflow run"
write_ssh_config "$PORT"
show "ssh -F $TMP/ssh_config prod-db-demo 'echo deployed as \$(whoami)'"
ssh -F "$TMP/ssh_config" prod-db-demo 'echo deployed as $(whoami)' | indent
grep "Accepted publickey" "$TMP/sshd.log" | indent

step "6. carol (auditor) finds the run's certificates by its name"
show "JIT_SSH_TOKEN=dev-carol jit-ssh audit certs --user gha:acme/web:run=4242"
JIT_SSH_TOKEN=dev-carol "$JIT" audit certs --user gha:acme/web:run=4242 | indent

step "7. A token is good for one call: replaying one the job used is refused"
TOKEN=$(curl -fsS -H "Authorization: Bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN" "$ACTIONS_ID_TOKEN_REQUEST_URL&audience=jit-ssh" | sed -n 's/.*"value":"\([^"]*\)".*/\1/p')
show "curl -H 'Authorization: GitHubActions <token>' \$JIT_SSH_SERVER/v1/requests?mine=true   # first use"
curl -sS -o /dev/null -w '    | HTTP %{http_code}\n' -H "Authorization: GitHubActions $TOKEN" "$JIT_SSH_SERVER/v1/requests?mine=true"
show "curl -H 'Authorization: GitHubActions <the same token>' \$JIT_SSH_SERVER/v1/requests?mine=true"
curl -sS -H "Authorization: GitHubActions $TOKEN" "$JIT_SSH_SERVER/v1/requests?mine=true" | indent

step "8. sam (admin) revokes the run; after 'host sync' the host refuses its certificate"
show "JIT_SSH_TOKEN=dev-sam jit-ssh revoke --user gha:acme/web:run=4242 --reason 'demo: run cancelled'"
JIT_SSH_TOKEN=dev-sam "$JIT" revoke --user gha:acme/web:run=4242 --reason "demo: run cancelled" 2>&1 | indent sam
"$JIT" host sync --dir "$TMP/host" >/dev/null
if ssh -F "$TMP/ssh_config" prod-db-demo true 2>/dev/null; then echo "$NAME: the revoked certificate still got in" >&2; exit 1; fi
say "ssh is refused now: the KRL lists the run's certificates."

step "Done. Stopping the issuer, the server, sshd and the agent, and removing $TMP."
