#!/usr/bin/env bash
# A real Synapse homeserver for ExecGov's Matrix tests and benchmark.
#
#   synapse.sh install                        venv under $HOME/.cache/execgov-synapse (reused)
#   synapse.sh start DIR PORT [--owner PID]   homeserver for `localhost` on 127.0.0.1:PORT;
#                                             with --owner it is stopped once PID is gone
#   synapse.sh register DIR PORT USER PASSWORD [admin]
#                                             a user, by shared-secret registration
#   synapse.sh stop DIR                       stops the homeserver started in DIR
#
# DIR keeps the database, media, signing key and shared secret, so `stop` then
# `start` with the same DIR and PORT brings back the same homeserver.
set -euo pipefail

SYNAPSE_VERSION="1.163.2"
CACHE="${EXECGOV_SYNAPSE_CACHE:-$HOME/.cache/execgov-synapse}"
VENV="$CACHE/venv"
PY="$VENV/bin/python"

die() { echo "synapse.sh: $*" >&2; exit 1; }

# The interpreter itself, not a pyenv shim (a shim costs ~270 ms per start).
base_python() {
  if command -v pyenv >/dev/null 2>&1 && pyenv which python3 >/dev/null 2>&1; then
    pyenv which python3
  else
    command -v python3 || die "python3 is needed to install Synapse"
  fi
}

installed() {
  [ -x "$PY" ] && [ "$(cat "$VENV/.execgov-synapse-version" 2>/dev/null)" = "$SYNAPSE_VERSION" ]
}

need_installed() {
  installed || die "Synapse $SYNAPSE_VERSION is not installed; run tests/synapse/synapse.sh install"
}

cmd_install() {
  if installed; then
    echo "Synapse $SYNAPSE_VERSION already installed in $VENV"
    return
  fi
  mkdir -p "$CACHE"
  rm -rf "$VENV"
  "$(base_python)" -m venv "$VENV"
  if "$VENV/bin/pip" install --quiet --disable-pip-version-check uv; then
    "$VENV/bin/uv" pip install --quiet --python "$PY" --compile-bytecode "matrix-synapse==$SYNAPSE_VERSION"
  else
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --compile "matrix-synapse==$SYNAPSE_VERSION"
  fi
  "$PY" -c 'import synapse; print("Synapse", synapse.__version__)'
  echo "$SYNAPSE_VERSION" > "$VENV/.execgov-synapse-version"
}

write_config() {
  local dir="$1" port="$2" secret
  secret="$(cat "$dir/shared_secret")"
  local limit='{per_second: 10000, burst_count: 100000}'
  cat > "$dir/homeserver.yaml" <<EOF
# Written by tests/synapse/synapse.sh: a loopback-only test homeserver.
server_name: "localhost"
public_baseurl: "http://127.0.0.1:$port/"
pid_file: "$dir/homeserver.pid"
listeners:
  - port: $port
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: "$dir/homeserver.db"
log_config: "$dir/log.yaml"
media_store_path: "$dir/media_store"
signing_key_path: "$dir/signing.key"
registration_shared_secret: "$secret"
macaroon_secret_key: "$secret-macaroon"
form_secret: "$secret-form"
enable_registration: false
report_stats: false
trusted_key_servers: []
suppress_key_server_warning: true
federation_domain_whitelist: []
enable_metrics: false
url_preview_enabled: false
presence:
  enabled: false
rc_message: $limit
rc_registration: $limit
rc_login:
  address: $limit
  account: $limit
  failed_attempts: $limit
rc_joins:
  local: $limit
  remote: $limit
rc_joins_per_room: $limit
rc_invites:
  per_room: $limit
  per_user: $limit
  per_issuer: $limit
rc_room_creation: $limit
rc_profile: $limit
rc_presence:
  per_user: $limit
rc_key_requests: $limit
rc_admin_redaction: $limit
rc_media_create: $limit
EOF
  cat > "$dir/log.yaml" <<EOF
version: 1
formatters:
  plain:
    format: "%(asctime)s %(levelname)s %(name)s: %(message)s"
handlers:
  file:
    class: logging.FileHandler
    filename: "$dir/homeserver.log"
    formatter: plain
root:
  level: WARNING
  handlers: [file]
disable_existing_loggers: false
EOF
}

url_of() { echo "http://127.0.0.1:$1"; }

cmd_start() {
  local dir="${1:?start DIR PORT [--owner PID]}" port="${2:?start DIR PORT [--owner PID]}" owner=""
  if [ "${3:-}" = "--owner" ]; then owner="${4:?--owner needs a pid}"; fi
  need_installed
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if [ -f "$dir/synapse.pid" ] && kill -0 "$(cat "$dir/synapse.pid")" 2>/dev/null; then
    die "a homeserver already runs from $dir (pid $(cat "$dir/synapse.pid"))"
  fi
  [ -f "$dir/shared_secret" ] || "$PY" -c 'import secrets; print(secrets.token_hex(24))' > "$dir/shared_secret"
  write_config "$dir" "$port"
  if [ ! -f "$dir/signing.key" ]; then
    "$PY" -m synapse.app.homeserver --config-path "$dir/homeserver.yaml" --generate-keys >/dev/null
  fi
  # Synapse writes pid_file only with --daemonize: run it in its own session and
  # record its pid ourselves.
  setsid "$PY" -m synapse.app.homeserver --config-path "$dir/homeserver.yaml" \
    >>"$dir/stdout.log" 2>&1 < /dev/null &
  local pid=$!
  echo "$pid" > "$dir/synapse.pid"
  if [ -n "$owner" ]; then
    # Stops the homeserver once its owner (a test process) is gone, however it ended.
    setsid bash -c "while kill -0 $owner 2>/dev/null && kill -0 $pid 2>/dev/null; do sleep 1; done; kill $pid 2>/dev/null; sleep 5; kill -9 $pid 2>/dev/null" \
      >/dev/null 2>&1 < /dev/null &
  fi
  local url; url="$(url_of "$port")"
  for _ in $(seq 1 300); do
    if curl -sf -o /dev/null "$url/_matrix/client/versions"; then
      echo "Synapse ready at $url (pid $pid)"
      return
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$dir/stdout.log" "$dir/homeserver.log" >&2 2>/dev/null || true
      die "Synapse exited during start-up (logs in $dir)"
    fi
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  die "Synapse did not answer on $url within 30 s (logs in $dir)"
}

cmd_register() {
  local dir="${1:?register DIR PORT USER PASSWORD [admin]}" port="${2:?}" user="${3:?}" password="${4:?}" admin="${5:-}"
  need_installed
  SECRET="$(cat "$dir/shared_secret")" URL="$(url_of "$port")" NAME="$user" PASSWORD="$password" ADMIN="$admin" \
    "$PY" - <<'EOF'
import hashlib, hmac, json, os, sys, urllib.error, urllib.request

url = os.environ["URL"] + "/_synapse/admin/v1/register"
name, password = os.environ["NAME"], os.environ["PASSWORD"]
admin = os.environ["ADMIN"] == "admin"
nonce = json.load(urllib.request.urlopen(url))["nonce"]
# HMAC-SHA1 of nonce\0user\0password\0admin|notadmin with the shared secret.
mac = hmac.new(os.environ["SECRET"].encode(), digestmod=hashlib.sha1)
mac.update(b"\x00".join(p.encode() for p in (nonce, name, password, "admin" if admin else "notadmin")))
body = json.dumps({"nonce": nonce, "username": name, "password": password,
                   "admin": admin, "mac": mac.hexdigest()}).encode()
req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
try:
    print(json.load(urllib.request.urlopen(req))["user_id"])
except urllib.error.HTTPError as e:
    sys.exit(f"registering {name} failed: {e.code} {e.read().decode()}")
EOF
}

cmd_stop() {
  local dir="${1:?stop DIR}"
  [ -f "$dir/synapse.pid" ] || { echo "no homeserver recorded in $dir"; return; }
  local pid; pid="$(cat "$dir/synapse.pid")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/synapse.pid"
  echo "Synapse stopped (pid $pid)"
}

case "${1:-}" in
  install) shift; cmd_install "$@" ;;
  start) shift; cmd_start "$@" ;;
  register) shift; cmd_register "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  *) die "usage: synapse.sh install | start DIR PORT [--owner PID] | register DIR PORT USER PASSWORD [admin] | stop DIR" ;;
esac
