#!/usr/bin/env bash
# Serves the library's per-process metrics (NPU_ALLOC_SHIM_METRICS=DIR) to
# Prometheus through node_exporter's textfile collector, the way a node of an
# inference cluster runs it (docs/metrics.md).
#
#   examples/deploy/textfile-collector.sh DIR [ADDRESS]
#
# DIR: the directory the processes write to (a hostPath volume shared by the
# pods of a node, for example); ADDRESS: where node_exporter listens
# (default 127.0.0.1:9100). Only the textfile collector is enabled here; a
# node's existing node_exporter needs just
#   --collector.textfile.directory=DIR
# Debian/Ubuntu: apt-get install prometheus-node-exporter.
set -euo pipefail
dir=${1:?usage: $0 DIR [ADDRESS]}
address=${2:-127.0.0.1:9100}
exporter=$(command -v prometheus-node-exporter || command -v node_exporter || true)
if [[ -z $exporter ]]; then
    echo "no node_exporter: apt-get install prometheus-node-exporter" >&2
    exit 2
fi
mkdir -p "$dir"
exec "$exporter" --collector.disable-defaults --collector.textfile \
    --collector.textfile.directory="$dir" --web.listen-address="$address"
