#!/bin/sh
# Installs containerd-shim-carnac-v1 on the node this pod runs on (the node's
# root filesystem is mounted at /host): copies the binary to
# /usr/local/bin, registers the `carnac` runtime in containerd's
# configuration if it is not there, and restarts containerd when the node
# uses systemd (running containers keep running: their shims are separate
# processes). Then it sleeps, so the DaemonSet's pod stays Ready.
# RESTART_CONTAINERD=no and SLEEP=no skip those two steps (the repository's
# test runs the script on a scratch directory that way).
set -eu
HOST=${HOST:-/host}
SHIM=${SHIM:-/shim/containerd-shim-carnac-v1}
BIN_DIR=${BIN_DIR:-/usr/local/bin}
CONFIG=${CONTAINERD_CONFIG:-/etc/containerd/config.toml}

install -d "$HOST$BIN_DIR"
# Copy, then rename: a shim starting meanwhile sees the old or the new file, never half of one.
cp "$SHIM" "$HOST$BIN_DIR/.containerd-shim-carnac-v1.new"
chmod 0755 "$HOST$BIN_DIR/.containerd-shim-carnac-v1.new"
mv "$HOST$BIN_DIR/.containerd-shim-carnac-v1.new" "$HOST$BIN_DIR/containerd-shim-carnac-v1"
echo "installed $BIN_DIR/containerd-shim-carnac-v1"

changed=no
if [ -f "$HOST$CONFIG" ] && grep -q 'runtimes\.carnac\]' "$HOST$CONFIG"; then
    echo "containerd already has the carnac runtime ($CONFIG)"
else
    install -d "$(dirname "$HOST$CONFIG")"
    [ -f "$HOST$CONFIG" ] || echo 'version = 2' > "$HOST$CONFIG"
    cp "$HOST$CONFIG" "$HOST$CONFIG.before-carnac"
    if grep -q '^version *= *3' "$HOST$CONFIG"; then
        plugin='io.containerd.cri.v1.runtime'        # containerd 2.x
    else
        plugin='io.containerd.grpc.v1.cri'           # containerd 1.6 / 1.7
    fi
    cat >> "$HOST$CONFIG" <<TOML

[plugins."$plugin".containerd.runtimes.carnac]
  runtime_type = "io.containerd.carnac.v1"
TOML
    echo "registered the carnac runtime in $CONFIG (previous file: $CONFIG.before-carnac)"
    changed=yes
fi

if [ "$changed" = yes ] && [ "${RESTART_CONTAINERD:-yes}" != no ]; then
    if nsenter -t 1 -m -u -i -n -p -- sh -c 'command -v systemctl >/dev/null'; then
        nsenter -t 1 -m -u -i -n -p -- systemctl restart containerd
        echo "restarted containerd"
    else
        echo "no systemd on this node: restart containerd yourself to load the carnac runtime"
    fi
fi
echo "done; label the node: kubectl label node \$NODE carnac.dev/shim=installed"
[ "${SLEEP:-yes}" = no ] || exec sleep infinity
