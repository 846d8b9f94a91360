#!/usr/bin/env bash
# tools/setup.sh PURPOSE...: the one place that knows which system packages
# jit-ssh's make targets need. `make demo`, `make test`, `make bench` and
# .ci/run call it first.
#
#   PURPOSE  demo   OpenSSH server and client (a throwaway sshd, ssh, ssh-agent)
#            test   demo's, plus sqlite3, a C compiler (go test -race needs cgo),
#                   chattr (the read-only ledger fault test), PostgreSQL's
#                   server (test/pgtest's throwaway database) and HAProxy
#                   (the replica tests)
#            bench  demo's, plus sqlite3 (the query floor the bench compares with)
#                   and taskset (the Vault comparison pinned to CPUs)
#            ci     everything test needs
#
# When everything is present it prints nothing and returns at once: it looks
# for the commands themselves, never asks dpkg or apt. When something is
# missing and we are root on Debian or Ubuntu, it runs `apt-get update` once
# and installs only the missing packages, saying which. Otherwise it stops,
# before anything else runs, with the one command to type.
#
# Later needs (Chromium) belong in the table below, next
# to the purpose that needs them.
set -euo pipefail

# need COMMAND PACKAGE: COMMAND (a name on PATH or an absolute path; the
# first of several alternatives separated by '|') comes from Debian's PACKAGE.
declare -a missing=()
need() {
  local alt
  IFS='|' read -ra alts <<<"$1"
  for alt in "${alts[@]}"; do
    if [[ $alt == /* ]]; then [ -x "$alt" ] && return 0
    else command -v "$alt" >/dev/null 2>&1 && return 0
    fi
  done
  local p
  for p in "${missing[@]:-}"; do [ "$p" = "$2" ] && return 0; done
  missing+=("$2")
}

openssh() {
  need "sshd|/usr/sbin/sshd" openssh-server
  need ssh openssh-client
  need ssh-agent openssh-client
  need ssh-add openssh-client
  need ssh-keygen openssh-client
}

# postgresql: the server programs test/pgtest runs, which Debian keeps
# off PATH in /usr/lib/postgresql/N/bin.
postgresql() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/postgres" ] && return 0
  done
  local p
  for p in "${missing[@]:-}"; do [ "$p" = postgresql ] && return 0; done
  missing+=(postgresql)
}

[ $# -gt 0 ] || { echo "usage: tools/setup.sh demo|test|bench|ci ..." >&2; exit 2; }
for purpose in "$@"; do
  case $purpose in
  demo) openssh ;;
  test | ci)
    openssh
    need sqlite3 sqlite3
    need "cc|gcc" gcc
    need "chattr|/usr/bin/chattr|/sbin/chattr" e2fsprogs
    postgresql
    need "haproxy|/usr/sbin/haproxy" haproxy
    ;;
  bench)
    openssh
    need sqlite3 sqlite3
    need taskset util-linux
    ;;
  *) echo "tools/setup.sh: unknown purpose '$purpose' (want demo, test, bench or ci)" >&2; exit 2 ;;
  esac
done

# Debian's sshd refuses to start as root without its privilege-separation
# directory, which only a booted system creates.
if [ "$(id -u)" = 0 ] && [ ! -d /run/sshd ] && { command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ]; }; then
  mkdir -p /run/sshd && chmod 0755 /run/sshd
fi

[ ${#missing[@]} -eq 0 ] && exit 0

debian=false
if [ -r /etc/os-release ] && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release && command -v apt-get >/dev/null 2>&1; then
  debian=true
fi
if [ "$(id -u)" != 0 ] || [ "$debian" != true ]; then
  if [ "$debian" = true ]; then
    echo "jit-ssh set-up: missing system packages; run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  else
    echo "jit-ssh set-up: missing system packages (Debian names: ${missing[*]}); install them with your package manager, then run this again" >&2
  fi
  exit 1
fi

echo "jit-ssh set-up: installing ${missing[*]} (apt-get; once, on a fresh machine)"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  echo "jit-ssh set-up: apt-get could not install ${missing[*]} (its last lines are above); fix that, then run this again" >&2
  exit 1
fi
# Installing openssh-server on a machine without a running init may leave
# the privilege-separation directory out.
if [ ! -d /run/sshd ]; then mkdir -p /run/sshd && chmod 0755 /run/sshd; fi
echo "jit-ssh set-up: installed ${missing[*]}"
