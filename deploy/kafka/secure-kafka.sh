#!/bin/sh
# The secured Kafka of docker-compose.yml, made with Kafka's own tooling in the apache/kafka image.
#
#   secure-kafka.sh setup   one-shot, as root: CA + broker certificate (keytool), a random
#                           password per principal, the storage formatted with every SCRAM-SHA-512
#                           user (`kafka-storage format --add-scram`, read from a Java argument file
#                           so no password is on a command line), files owned by their reader.
#   secure-kafka.sh start   the broker: server.properties from the KAFKA_* environment (the
#                           official image's naming) plus TLS, SASL and authorizer settings.
#   secure-kafka.sh acls    one-shot, after the broker is healthy: each service's ACLs with
#                           kafka-acls as `admin` (the table below; tests check it matches
#                           wardwatch/broker_access.py SERVICE_GRANTS).
#
# Layout under $SECRETS, one directory per reader (docker-compose.yml: one named volume each;
# every container mounts only its own, read-only):
#   ca/        the CA key (setup only; keep it for issuing new certificates)
#   kafka/     broker keystore + its passwords, ca.pem, client.properties (health check)
#   admin/     admin.properties for Kafka's tools, ca.pem, password (owned by the broker's user)
#   operator/  the admin principal for wardwatch's tools: ca.pem, password (owned by WARDWATCH_UID)
#   <service>/ ca.pem, password   (sim gateway ingest score alerts wardview)
set -eu

SECRETS=${SECRETS:-/secrets}
KAFKA_HOME=${KAFKA_HOME:-/opt/kafka}
KAFKA_LIBS=${KAFKA_LIBS:-$KAFKA_HOME/libs}
KAFKA_USER=${KAFKA_USER:-appuser}          # the broker's user in the apache/kafka image
WARDWATCH_UID=${WARDWATCH_UID:-10001}      # the services' user in wardwatch's image
BROKER_SAN=${BROKER_SAN:-dns:kafka,dns:localhost,ip:127.0.0.1}
SERVICES="sim gateway ingest score alerts wardview"
MECHANISM=SCRAM-SHA-512

password() { head -c 18 /dev/urandom | base64 | tr '+/' '-_'; }

# KAFKA_FOO_BAR=v -> foo.bar=v (the official image's rule: ___ -> '-', __ -> '_', _ -> '.').
properties_from_env() {
    env | grep '^KAFKA_' \
        | grep -v -E '^KAFKA_(HEAP_OPTS|OPTS|JVM_PERFORMANCE_OPTS|LOG4J_OPTS|JMX_OPTS|GC_LOG_OPTS|DEBUG|HOME|LIBS|USER)=' \
        | while IFS='=' read -r name value; do
            key=$(printf '%s' "${name#KAFKA_}" | tr 'A-Z' 'a-z' | sed -e 's/___/-/g' -e 's/__/@/g' -e 's/_/./g' -e 's/@/_/g')
            printf '%s=%s\n' "$key" "$value"
        done
}

write_server_properties() {  # $1: file (0600)
    k=$SECRETS/kafka
    store=$(cat "$k/keystore.password")
    broker=$(cat "$k/broker.password")
    jaas="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"broker\" password=\"$broker\";"
    (
        umask 077
        {
            properties_from_env
            echo "sasl.enabled.mechanisms=$MECHANISM"
            echo "sasl.mechanism.inter.broker.protocol=$MECHANISM"
            for listener in internal external; do
                echo "listener.name.$listener.scram-sha-512.sasl.jaas.config=$jaas"
            done
            echo "ssl.keystore.type=PKCS12"
            echo "ssl.keystore.location=$k/broker.p12"
            echo "ssl.keystore.password=$store"
            echo "ssl.key.password=$store"
            echo "ssl.truststore.type=PEM"
            echo "ssl.truststore.location=$k/ca.pem"
            # The controller listener takes only certificates from our CA; CN=broker -> User:broker.
            echo "listener.name.controller.ssl.client.auth=required"
            echo 'ssl.principal.mapping.rules=RULE:^CN=([^,]+)$/$1/,DEFAULT'
            echo "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"
            echo "super.users=User:broker;User:admin"
            echo "allow.everyone.if.no.acl.found=false"
        } > "$1"
    )
}

client_properties() {  # $1 user, $2 password file, $3 CA file
    echo "security.protocol=SASL_SSL"
    echo "sasl.mechanism=$MECHANISM"
    echo "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"$1\" password=\"$(cat "$2")\";"
    echo "ssl.truststore.type=PEM"
    echo "ssl.truststore.location=$3"
}

setup() {
    umask 077
    mkdir -p "$SECRETS/ca" "$SECRETS/kafka" "$SECRETS/admin" "$SECRETS/operator"
    for s in $SERVICES; do mkdir -p "$SECRETS/$s"; done
    for p in broker keystore; do
        [ -s "$SECRETS/kafka/$p.password" ] || password > "$SECRETS/kafka/$p.password"
    done
    for p in admin $SERVICES; do
        [ -s "$SECRETS/$p/password" ] || password > "$SECRETS/$p/password"
    done
    if [ ! -s "$SECRETS/kafka/broker.p12" ]; then
        echo "kafka-setup: making the CA and the broker certificate ($BROKER_SAN)"
        pw="-storepass:file $SECRETS/kafka/keystore.password"
        ca=$SECRETS/ca/ca.p12
        rm -f "$ca" "$SECRETS/ca/broker.p12"
        # shellcheck disable=SC2086
        {
            keytool -genkeypair -keystore "$ca" -storetype PKCS12 $pw -alias ca -dname CN=wardwatch-ca \
                -keyalg RSA -keysize 2048 -validity 825 -ext bc:c=ca:true -ext ku:c=keyCertSign,cRLSign
            keytool -exportcert -keystore "$ca" $pw -alias ca -rfc -file "$SECRETS/ca/ca.pem"
            keytool -genkeypair -keystore "$SECRETS/ca/broker.p12" -storetype PKCS12 $pw -alias broker -dname CN=broker \
                -keyalg RSA -keysize 2048 -validity 825
            keytool -certreq -keystore "$SECRETS/ca/broker.p12" $pw -alias broker -file "$SECRETS/ca/broker.csr"
            keytool -gencert -keystore "$ca" $pw -alias ca -infile "$SECRETS/ca/broker.csr" -outfile "$SECRETS/ca/broker.pem" \
                -rfc -validity 825 -ext "SAN=$BROKER_SAN" -ext ku:c=digitalSignature,keyEncipherment -ext eku=serverAuth,clientAuth
            keytool -importcert -keystore "$SECRETS/ca/broker.p12" $pw -alias ca -file "$SECRETS/ca/ca.pem" -noprompt
            keytool -importcert -keystore "$SECRETS/ca/broker.p12" $pw -alias broker -file "$SECRETS/ca/broker.pem" -noprompt
        } > /dev/null
        rm -f "$SECRETS/ca/broker.csr"
        mv "$SECRETS/ca/broker.p12" "$SECRETS/kafka/broker.p12"
    fi
    for d in kafka admin operator $SERVICES; do cp "$SECRETS/ca/ca.pem" "$SECRETS/$d/ca.pem"; done
    cp "$SECRETS/admin/password" "$SECRETS/operator/password"
    client_properties broker "$SECRETS/kafka/broker.password" "$SECRETS/kafka/ca.pem" > "$SECRETS/kafka/client.properties"
    client_properties admin "$SECRETS/admin/password" "$SECRETS/admin/ca.pem" > "$SECRETS/admin/admin.properties"

    # Format once (idempotent), with every SCRAM user in the first metadata records.
    write_server_properties /tmp/format.properties
    {
        echo kafka.tools.StorageTool
        echo format
        echo "--cluster-id=$CLUSTER_ID"
        echo -c
        echo /tmp/format.properties
        echo --ignore-formatted
        echo --add-scram
        echo "$MECHANISM=[name=broker,password=$(cat "$SECRETS/kafka/broker.password")]"
        for p in admin $SERVICES; do
            echo --add-scram
            echo "$MECHANISM=[name=$p,password=$(cat "$SECRETS/$p/password")]"
        done
    } > /tmp/format.args
    java -cp "$KAFKA_LIBS/*" @/tmp/format.args
    rm -f /tmp/format.args /tmp/format.properties

    # Each reader owns its directory; nobody else can read it.
    chown -R "$KAFKA_USER" "$SECRETS/kafka" "$KAFKA_LOG_DIRS"
    chown -R "$KAFKA_USER" "$SECRETS/admin"
    for s in operator $SERVICES; do chown -R "$WARDWATCH_UID" "$SECRETS/$s"; done
    find "$SECRETS" -type d -exec chmod 0700 {} + && find "$SECRETS" -type f -exec chmod 0600 {} +
    echo "kafka-setup: done (CA, broker certificate, SCRAM users: broker admin $SERVICES)"
}

start() {
    mkdir -p /tmp/wardwatch && chmod 0700 /tmp/wardwatch
    write_server_properties /tmp/wardwatch/server.properties
    if [ -x "$KAFKA_HOME/bin/kafka-server-start.sh" ]; then
        exec "$KAFKA_HOME/bin/kafka-server-start.sh" /tmp/wardwatch/server.properties
    fi
    # shellcheck disable=SC2086
    exec java ${KAFKA_HEAP_OPTS:-} -cp "$KAFKA_LIBS/*" kafka.Kafka /tmp/wardwatch/server.properties
}

# The ACL table: principal, pattern type, resource type, operations, names (the topic prefix,
# WARDWATCH_TOPIC_PREFIX, goes in front of every name). Services create their own topics
# (Create on exactly those names), so partition counts stay their configuration.
# ACL TABLE BEGIN
ACLS='
sim       literal  topic Create,Write    vitals.raw sim.events
gateway   literal  topic Create,Write    vitals.raw
ingest    literal  topic Create,Read     vitals.raw ingest.state
ingest    literal  topic Create,Write    vitals vitals.dlq ingest.state
ingest    literal  group Read            wardwatch-ingest
ingest    prefixed txn   Write,Describe  wardwatch-ingest-
score     literal  topic Create,Read     vitals scorer.state
score     literal  topic Create,Write    risk vitals.dlq scorer.state
score     literal  group Read            wardwatch-score
score     prefixed txn   Write,Describe  wardwatch-score-
alerts    literal  topic Create,Read     risk alerts.control alerts.state
alerts    literal  topic Create,Write    alerts vitals.dlq alerts.state
alerts    literal  group Read            wardwatch-alerts
alerts    prefixed txn   Write,Describe  wardwatch-alerts-
wardview  literal  topic Create,Read     vitals risk alerts
wardview  literal  topic Create,Write    alerts.control
'
# ACL TABLE END

acls() {
    bootstrap=${ACL_BOOTSTRAP_SERVER:-kafka:19092}
    prefix=${WARDWATCH_TOPIC_PREFIX:-}
    echo "$ACLS" | while read -r principal pattern kind operations names; do
        [ -n "$principal" ] || continue
        case $kind in
            topic) flag=--topic ;;
            group) flag=--group ;;
            txn) flag=--transactional-id ;;
        esac
        set --
        for op in $(echo "$operations" | tr ',' ' '); do set -- "$@" --operation "$op"; done
        for name in $names; do set -- "$@" "$flag" "$prefix$name"; done
        "$KAFKA_HOME/bin/kafka-acls.sh" --bootstrap-server "$bootstrap" --command-config "$SECRETS/admin/admin.properties" \
            --add --allow-principal "User:$principal" --resource-pattern-type "$pattern" "$@" > /dev/null
        echo "kafka-acls: User:$principal $operations on $kind $names ($pattern)"
    done
}

case "${1:-}" in
    setup) setup ;;
    start) start ;;
    acls) acls ;;
    *) echo "usage: $0 setup|start|acls" >&2; exit 2 ;;
esac
