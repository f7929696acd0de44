#!/bin/bash
# Runs a class from the Apache Kafka jars, as the distribution's script of the same name does.
set -euo pipefail
main="$1"; shift
exec java ${KAFKA_HEAP_OPTS:--Xmx256m} ${KAFKA_OPTS:-} \
  -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties \
  -cp '/opt/kafka/libs/*' "$main" "$@"
