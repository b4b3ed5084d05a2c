#!/usr/bin/env bash
# Throwaway single-node Apache Kafka (KRaft) on 127.0.0.1 for the real-broker tests.
#
#   scripts/kafka.sh fetch   resolve kafka_2.13 and its dependencies from Maven Central
#                            into $SPAMFLOW_KAFKA_CACHE (default ~/.cache/spamflow/kafka-<ver>)
#   scripts/kafka.sh start   format a temporary log dir, start the broker, wait until it answers;
#                            prints the bootstrap address (also written to $STATE/bootstrap)
#   scripts/kafka.sh stop    stop the broker and delete its temporary directories
#   scripts/kafka.sh restart [hard]
#                            stop the broker (SIGTERM, or SIGKILL with `hard`) and start it
#                            again on the same data; prints the bootstrap address
#
# Jars live outside the repository and are never committed. Needs Java 17 and Maven.
set -euo pipefail

KAFKA_VERSION="${SPAMFLOW_KAFKA_VERSION:-4.4.0}"
# Fall back one release at a time when a version does not resolve with its dependencies.
KAFKA_FALLBACKS="${SPAMFLOW_KAFKA_FALLBACKS:-4.3.1 4.2.1 4.1.1 4.0.0}"
CACHE_ROOT="${SPAMFLOW_KAFKA_CACHE:-$HOME/.cache/spamflow}"
STATE="${SPAMFLOW_KAFKA_STATE:-${TMPDIR:-/tmp}/spamflow-kafka}"
# Below Linux's ephemeral port range (32768-60999): a fixed port inside it can be held by
# any client's outgoing connection at the moment the broker starts, and start-up fails with
# "Address already in use".
PORT="${SPAMFLOW_KAFKA_PORT:-29092}"
CONTROLLER_PORT="${SPAMFLOW_KAFKA_CONTROLLER_PORT:-29093}"

log() { echo "kafka.sh: $*" >&2; }

fetch_version() {
  local ver="$1" dir="$CACHE_ROOT/kafka-$1"
  if [ -f "$dir/.complete" ]; then echo "$dir"; return 0; fi
  command -v mvn >/dev/null || { log "Maven (mvn) is required: apt-get install maven"; return 1; }
  mkdir -p "$dir/libs"
  cat > "$dir/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>spamflow</groupId><artifactId>kafka-fetch</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$ver</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$ver</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
  </dependencies>
</project>
POM
  log "resolving org.apache.kafka:kafka_2.13:$ver from Maven Central into $dir/libs"
  if mvn -q -B -f "$dir/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$dir/libs" -DincludeScope=runtime >"$dir/mvn.log" 2>&1; then
    touch "$dir/.complete"; echo "$dir"; return 0
  fi
  log "kafka $ver did not resolve (see $dir/mvn.log)"; return 1
}

fetch() {
  local v
  for v in $KAFKA_VERSION $KAFKA_FALLBACKS; do
    if fetch_version "$v"; then return 0; fi
  done
  log "no Kafka 4.x release resolved from Maven Central"; return 1
}

start() {
  local dir; dir=$(fetch | tail -n 1)
  stop_quiet
  mkdir -p "$STATE"
  local data="$STATE/data" cfg="$STATE/server.properties"
  mkdir -p "$data"
  cat > "$STATE/log4j.properties" <<'L4J'
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
L4J
  cat > "$cfg" <<CFG
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$data
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.cleaner.enable=true
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
CFG
  cat > "$STATE/log4j2.xml" <<'L4J2'
<Configuration status="WARN"><Appenders><Console name="c" target="SYSTEM_OUT"><PatternLayout pattern="[%d] %p %m (%c)%n"/></Console></Appenders>
<Loggers><Root level="warn"><AppenderRef ref="c"/></Root></Loggers></Configuration>
L4J2
  local cp="$dir/libs/*"
  local java_opts=(-Xms256m -Xmx1g -Dlog4j.configuration="file:$STATE/log4j.properties" -Dlog4j2.configurationFile="$STATE/log4j2.xml")
  local cluster_id
  cluster_id=$(java -cp "$cp" "${java_opts[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
  java -cp "$cp" "${java_opts[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$cfg" --standalone >"$STATE/format.log" 2>&1 \
    || java -cp "$cp" "${java_opts[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$cfg" >"$STATE/format.log" 2>&1 \
    || { log "storage format failed:"; cat "$STATE/format.log" >&2; return 1; }
  launch "$dir"
}

# Starts the broker on the formatted $STATE and waits until it answers.
launch() {
  local dir="$1" cfg="$STATE/server.properties"
  local cp="$dir/libs/*"
  local java_opts=(-Xms256m -Xmx1g -Dlog4j.configuration="file:$STATE/log4j.properties" -Dlog4j2.configurationFile="$STATE/log4j2.xml")
  nohup java -cp "$cp" "${java_opts[@]}" kafka.Kafka "$cfg" >>"$STATE/broker.log" 2>&1 &
  echo $! > "$STATE/pid"
  local i
  for i in $(seq 1 120); do
    if (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then
      echo "127.0.0.1:$PORT" > "$STATE/bootstrap"
      log "broker up on 127.0.0.1:$PORT (pid $(cat "$STATE/pid"), log $STATE/broker.log)"
      echo "127.0.0.1:$PORT"; return 0
    fi
    if ! kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then
      log "broker exited during start-up:"; tail -n 40 "$STATE/broker.log" >&2; return 1
    fi
    sleep 0.5
  done
  log "broker did not open 127.0.0.1:$PORT within 60 s"; tail -n 40 "$STATE/broker.log" >&2; return 1
}

# Stops the broker process, SIGKILL with `restart hard`, and starts it again on the same
# data (the fault harness bounces the broker this way).
restart() {
  local dir; dir=$(fetch | tail -n 1)
  [ -f "$STATE/server.properties" ] || { log "no broker state in $STATE: start it first"; return 1; }
  stop_process "${1:-}"
  launch "$dir"
}

stop_process() {
  if [ -f "$STATE/pid" ]; then
    local pid; pid=$(cat "$STATE/pid")
    if kill -0 "$pid" 2>/dev/null; then
      if [ "${1:-}" = hard ]; then kill -9 "$pid" 2>/dev/null || true; else kill "$pid" 2>/dev/null || true; fi
      for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
}

stop_quiet() {
  stop_process
  rm -rf "$STATE"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop_quiet; log "stopped" ;;
  restart) restart "${2:-}" ;;
  *) echo "usage: $0 fetch|start|stop|restart [hard]" >&2; exit 2 ;;
esac
