# shellcheck shell=bash
# Shared by demo.sh and demo-vault.sh (source it with NAME set to the
# script's name): checks the tools, makes one temporary directory that is
# removed with everything the demo started on exit, Ctrl-C or failure, and
# provides the narration helpers, free_port and start_sshd.

JIT=${JIT:-$(pwd)/bin/jit-ssh}
[ -x "$JIT" ] || { echo "$NAME: $JIT not found; run 'make build' first" >&2; exit 1; }
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
for tool in "$SSHD" ssh ssh-agent ssh-add ssh-keygen; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$NAME: $tool not found; install openssh-server and openssh-client (apt-get install -y openssh-server)" >&2; exit 1; }
done

TMP=$(mktemp -d "/tmp/jit-$NAME.XXXXXX")
# The demo's CLI keeps its remembered grants and any sign-in under $TMP,
# never in your own home.
export XDG_CACHE_HOME=$TMP/cache XDG_CONFIG_HOME=$TMP/config
PIDS=()
cleanup() {
  status=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
  if [ "$status" -ne 0 ]; then echo; echo "$NAME failed (exit $status); everything it started has been stopped and removed." >&2; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Bold headings on a terminal only: a log file gets plain text.
bold=; plain=
if [ -t 1 ]; then bold=$(tput bold 2>/dev/null || true); plain=$(tput sgr0 2>/dev/null || true); fi
step() { echo; echo "${bold}==> $*${plain}"; }
say() { echo "    $*"; }
show() { echo "    \$ $*"; }
indent() { sed -u "s/^/    ${1:-}| /"; }

free_port() {
  local p
  for _ in $(seq 50); do
    p=$(( (RANDOM % 20000) + 30000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "$NAME: no free port found" >&2; return 1
}

LOGIN=$(id -un)

# start_sshd PORT: a throwaway sshd on loopback that trusts the CA only
# through the drop-in 'jit-ssh host config' wrote to $TMP/host; it logs to
# $TMP/sshd.log.
start_sshd() {
  ssh-keygen -q -t ed25519 -N '' -f "$TMP/ssh_host_ed25519_key"
  cat >"$TMP/sshd_config" <<CONF
Include $TMP/host/jit-ssh.conf
ListenAddress 127.0.0.1
Port $1
HostKey $TMP/ssh_host_ed25519_key
PidFile $TMP/sshd.pid
AuthorizedKeysFile none
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel VERBOSE
PermitRootLogin prohibit-password
CONF
  if [ "$(id -u)" = 0 ]; then mkdir -p /run/sshd; fi
  "$SSHD" -D -e -f "$TMP/sshd_config" 2>"$TMP/sshd.log" &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q "listening on" "$TMP/sshd.log" 2>/dev/null && break; sleep 0.1; done
}

# write_ssh_config PORT: $TMP/ssh_config, a throwaway client config whose
# host prod-db-demo is the sshd on 127.0.0.1:PORT, so the demo's ssh line is
# short and is exactly what runs, and your own ~/.ssh is left alone.
write_ssh_config() {
  say "A throwaway client config keeps the demo away from your own ~/.ssh: host prod-db-demo is 127.0.0.1:$1,"
  say "its host key is not remembered, and only the agent's keys are offered (no key files, no passwords)."
  cat >"$TMP/ssh_config" <<CONF
Host prod-db-demo
  HostName 127.0.0.1
  Port $1
  User $LOGIN
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  GlobalKnownHostsFile /dev/null
  IdentityFile none
  BatchMode yes
  LogLevel ERROR
CONF
}
