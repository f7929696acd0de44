#!/usr/bin/env bash
# Makes a Docker engine and Docker Compose v2 available, installing what is missing:
#   - Debian's docker.io (the engine) when dockerd is absent, started in the background as root;
#   - Compose v2 built from the Go module proxy (Docker Hub and GitHub releases are unreachable
#     here), cached outside the clone and installed as the `docker compose` CLI plugin.
# Idempotent: a second run finds everything in place and returns at once.
set -euo pipefail
COMPOSE_VERSION="${COMPOSE_VERSION:-v2.32.4}"
CACHE_DIR="${WARDWATCH_CACHE_DIR:-$HOME/.cache/wardwatch}"

say() { echo "docker-ci: $*" >&2; }

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  [ "$(id -u)" = 0 ] || { say "docker.io and debootstrap are missing and this is not root: install them"; exit 1; }
  say "installing docker.io and debootstrap from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io debootstrap >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  say "starting dockerd"
  nohup dockerd >"$CACHE_DIR/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { say "dockerd did not start: see $CACHE_DIR/dockerd.log"; exit 1; }
fi

plugin="$HOME/.docker/cli-plugins/docker-compose"
if ! docker compose version >/dev/null 2>&1; then
  built="$CACHE_DIR/compose/$COMPOSE_VERSION/docker-compose"
  if [ ! -x "$built" ]; then
    command -v go >/dev/null || { say "Go is needed to build Docker Compose $COMPOSE_VERSION"; exit 1; }
    say "building Docker Compose $COMPOSE_VERSION from the Go module proxy (a few minutes, once)"
    mkdir -p "$(dirname "$built")"
    tmp="$(mktemp -d)"
    GOBIN="$tmp" go install "github.com/docker/compose/v2/cmd@$COMPOSE_VERSION"
    mv "$tmp/cmd" "$built"
    rm -rf "$tmp"
  fi
  mkdir -p "$(dirname "$plugin")"
  ln -sf "$built" "$plugin"
fi
docker compose version >&2
