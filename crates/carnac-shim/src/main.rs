//! `containerd-shim-carnac-v1`: the containerd shim v2 that runs a container's
//! WebAssembly module with Carnac (runtime type `io.containerd.carnac.v1`).
//!
//! Built on runwasi's `containerd-shim-wasm`: containerd talks to this binary
//! over the shim v2 ttrpc API, and youki's `libcontainer` (inside that crate)
//! sets each container up as runc would (root filesystem, namespaces, cgroup
//! with the pod's memory and CPU limits, stdio to the container's log). Inside
//! the container, instead of `exec`ing a Linux binary, the shim's [`sandbox`]
//! runs the module named by the entrypoint in Carnac with WASI preview1: the
//! container's args, env and root filesystem (preopened as `/`) are the
//! guest's argv, environment and files. A `carnac serve`-shaped image (a
//! `carnac.toml` entrypoint, or `CARNAC_SERVE=1`) runs the HTTP function host
//! in the pod instead. See `deploy/kubernetes/` and the README.

mod guest;
mod limits;
mod sandbox;

use containerd_shim_wasm::shim::{Cli, Config};

fn main() {
    // Read before the shim forks its zygote (every container process is a
    // fork of it, so they all see what is captured here).
    sandbox::capture_node_defaults();
    sandbox::CarnacShim::run(Config { default_log_level: "info".to_string(), ..Default::default() });
}
