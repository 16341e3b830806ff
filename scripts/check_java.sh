#!/usr/bin/env bash
# Exit non-zero with a clear message unless Java 17+ is on PATH (PySpark 4.x needs 17 or 21).
set -u
if ! command -v java >/dev/null 2>&1; then
  echo "rbm-reco needs Java 17 or newer for Spark, and no 'java' is on PATH." >&2
  echo "Install one, e.g. 'apt-get install openjdk-17-jre-headless' (Debian/Ubuntu) or 'brew install openjdk@17' (macOS), or set JAVA_HOME." >&2
  exit 1
fi
ver=$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
major=${ver%%.*}
[ "$major" = "1" ] && major=$(echo "$ver" | cut -d. -f2)
if ! [ "$major" -ge 17 ] 2>/dev/null; then
  echo "rbm-reco needs Java 17 or newer for Spark; found Java '$ver'." >&2
  echo "Install OpenJDK 17 or 21 and put it first on PATH (or set JAVA_HOME)." >&2
  exit 1
fi
