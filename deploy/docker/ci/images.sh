#!/usr/bin/env bash
# Builds, from Debian packages, the images the compose test needs in place of the Docker Hub ones
# it cannot pull here (nothing is pushed anywhere):
#   wardwatch-ci/debian:bookworm  debootstrap --variant=minbase, imported; trusts the host's CAs
#   wardwatch-ci/python:3.11      Debian's Python 3.11 (stands in for python:3.11-slim)
#   wardwatch-ci/kafka:4.1.1      the same Apache Kafka jars from Maven Central on OpenJDK 17
#   wardwatch-ci/prometheus       Prometheus from Debian
# The Debian base is made only when missing (debootstrap takes a minute); the others are built
# every time, so a changed Dockerfile takes effect (docker's layer cache makes that cheap).
set -euo pipefail
cd "$(dirname "$0")"
CACHE_DIR="${WARDWATCH_CACHE_DIR:-$HOME/.cache/wardwatch}"
say() { echo "docker-ci: $*" >&2; }
have() { docker image inspect "$1" >/dev/null 2>&1; }

if ! have wardwatch-ci/debian:bookworm; then
  say "debootstrap bookworm (minbase) -> wardwatch-ci/debian:bookworm"
  root="$(mktemp -d)"
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
  # The registries are reached through this host's TLS setup: images trust what the host trusts.
  # (Kept apart from /etc/ssl/certs, which Debian's ca-certificates package rewrites.)
  mkdir -p "$root/etc/ssl"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/ci-host-ca.crt"
  tar -C "$root" -c . | docker import \
    -c 'ENV PIP_CERT=/etc/ssl/ci-host-ca.crt SSL_CERT_FILE=/etc/ssl/ci-host-ca.crt' \
    - wardwatch-ci/debian:bookworm >/dev/null
  rm -rf "$root"
fi

say "building wardwatch-ci/python:3.11, wardwatch-ci/prometheus, wardwatch-ci/kafka:4.1.1"
docker build -q -t wardwatch-ci/python:3.11 python >/dev/null
docker build -q -t wardwatch-ci/prometheus prometheus >/dev/null
{
  context="$(mktemp -d)"
  cp kafka/Dockerfile kafka/run kafka/kafka-run-class.sh kafka/log4j2.properties "$context/"
  mvn -B -q -f kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$context/libs"
  docker build -q -t wardwatch-ci/kafka:4.1.1 "$context" >/dev/null
  rm -rf "$context"
}
say "images ready: $(docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^wardwatch' | tr '\n' ' ')"
