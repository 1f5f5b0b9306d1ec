#!/usr/bin/env bash
# Set-up shared by ./ops/demo and ./ops/test: checks the tools the system
# needs, builds .venv at the repository root, and fetches the pinned Kafka
# broker jars. Idempotent: a second run only checks.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*" >&2; }
fail() { printf '\nerror: %s\n' "$*" >&2; exit 2; }
need() { command -v "$1" >/dev/null 2>&1 || fail "'$1' is not installed: $2"; }

step "checking tools"
need python3 "install Python 3.11 or newer"
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || fail "Python 3.11 or newer is needed; python3 is $(python3 --version 2>&1)"
need cc "install a C compiler (the ring's kernels are compiled at install), e.g. apt-get install gcc"
python3 -c 'import os, sysconfig, sys; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)' \
  || fail "Python's C headers are not installed (the ring's kernels are compiled at install), e.g. apt-get install python3-dev"
python3 -c 'import ctypes.util, sys; sys.exit(0 if ctypes.util.find_library("zstd") else 1)' \
  || fail "libzstd is not installed (the ring's block encoder calls it), e.g. apt-get install libzstd1"
if [ -z "${PEGASUS_KAFKA_BOOTSTRAP:-}" ]; then
  need java "install a Java 17+ runtime (the local Kafka broker runs on it), e.g. apt-get install openjdk-17-jre-headless"
  java_major=$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')
  [ "${java_major%%.*}" -ge 17 ] 2>/dev/null || fail "Java 17 or newer is needed; found ${java_major:-unknown}"
  need mvn "install Apache Maven (it fetches the pinned Kafka broker jars), e.g. apt-get install maven"
fi
echo "python $(python3 --version 2>&1 | cut -d' ' -f2), java ${java_major:-not needed}, maven $(command -v mvn >/dev/null && mvn -v 2>/dev/null | head -1 | awk '{print $3}' || echo 'not needed')" >&2

step "python environment (.venv)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv || fail "could not create .venv (on Debian/Ubuntu: apt-get install python3-venv)"
fi
stamp=".venv/.pegasus-installed"
# What the install builds from: the dependencies and the compiled kernels.
want="$(cat pyproject.toml setup.py pegasus_kafka/ring/_kernels.c \
  pegasus_kafka/ring/_coder.c pegasus_kafka/ring/_coder.h pegasus_kafka/ring/_seal.c pegasus_kafka/_avro.c | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --upgrade pip >&2 \
    || fail "pip could not reach the package index (check network access to PyPI)"
  .venv/bin/python -m pip install --progress-bar on -e '.[dev]' >&2 \
    || fail "installing the Python dependencies failed (check network access to PyPI; output above)"
  echo "$want" > "$stamp"
else
  echo "up to date" >&2
fi

if [ -z "${PEGASUS_KAFKA_BOOTSTRAP:-}" ]; then
  step "Kafka broker jars (Maven; cached in ${PEGASUS_HOME:-$HOME/.cache/pegasus})"
  .venv/bin/pegasus dev kafka fetch >&2 \
    || fail "Maven could not fetch the Kafka broker jars (check network access to Maven Central)"
fi
