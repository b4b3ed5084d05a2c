#!/usr/bin/env bash
# Installs the system packages spamflow needs when they are missing (Debian/Ubuntu),
# or says exactly what to install. Rust (cargo) must already be installed.
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# Build: librdkafka (built from source by rdkafka-sys), OpenSSL for TLS/SASL-SCRAM,
# zlib; Hyperscan for the pattern operator. Tests: Java 17 and Maven for Apache Kafka.
for p in build-essential pkg-config libssl-dev zlib1g-dev libhyperscan-dev python3; do
  have_pkg "$p" || need+=("$p")
done
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
# The load test's PNG plots draw their labels in DejaVu Sans.
have_pkg fonts-dejavu-core || need+=(fonts-dejavu-core)
# Tests: Go builds the OpenTelemetry Collector the telemetry test sends to.
command -v go >/dev/null || need+=(golang-go)
# Tests: headless Chromium opens the page `spamflow stats --html` writes.
command -v chromium >/dev/null || need+=(chromium)

if ! command -v cargo >/dev/null; then
  echo "deps: cargo not found. Install Rust first (rustup), then run make again." >&2
  exit 1
fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if ! command -v apt-get >/dev/null; then
  echo "deps: missing ${need[*]}; install them with your package manager." >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ -n "$SUDO" ] && ! sudo -n true 2>/dev/null; then
  echo "deps: missing packages. Run: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${need[@]}" >/dev/null
