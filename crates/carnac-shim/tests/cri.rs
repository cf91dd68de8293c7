//! A pod on Carnac through containerd's CRI plugin: the API the kubelet
//! calls, with the RuntimeClass handler `carnac` (what `runtimeClassName:
//! carnac` selects) mapped to the shim as in `deploy/kubernetes/README.md`.
//! The test plays the kubelet: it runs a pod sandbox (a Linux pause
//! container, which the shim hands to youki's default executor, as for
//! `registry.k8s.io/pause` on a node), then Wasm containers in it, and checks
//! their exit codes, the CRI log files `kubectl logs` reads, args and env, a
//! memory limit as the kubelet sets it, StopContainer (SIGTERM), the function
//! host on the (host) network, and that removing the pod leaves nothing.
//!
//! Same machine requirements as `containerd.rs`; also installs
//! `busybox-static` (the pause container) when missing. Pods use the node's
//! network: no CNI plugin is involved.

#[path = "containerd/guests.rs"]
mod guests;
#[path = "containerd/harness.rs"]
mod harness;
#[path = "containerd/oci.rs"]
mod oci;

use std::path::Path;
use std::time::{Duration, Instant};

use harness::*;
use k8s_cri::v1 as cri;

type Runtime = cri::runtime_service_client::RuntimeServiceClient<tonic::transport::Channel>;

const PAUSE: &str = "docker.io/carnac-test/pause:1";
const PROGRAMS: &str = "docker.io/carnac-test/programs:1";
const SERVE: &str = "docker.io/carnac-test/serve:1";

/// A CRI client on containerd's socket.
async fn connect(sock: &Path) -> Runtime {
    let sock = sock.to_path_buf();
    let channel = tonic::transport::Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let sock = sock.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tokio::net::UnixStream::connect(sock).await?))
            }
        }))
        .await
        .expect("connecting to containerd's CRI service");
    cri::runtime_service_client::RuntimeServiceClient::new(channel)
}

/// What the kubelet sends for a container: image, command, args, env, a memory limit.
struct Spec<'a> {
    name: &'a str,
    image: &'a str,
    command: &'a [&'a str],
    args: &'a [&'a str],
    env: &'a [(&'a str, &'a str)],
    memory: i64,
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Spec { name: "", image: PROGRAMS, command: &[], args: &[], env: &[], memory: 0 }
    }
}

struct Pod {
    rt: Runtime,
    id: String,
    config: cri::PodSandboxConfig,
    logs: std::path::PathBuf,
}

impl Pod {
    async fn start(rt: Runtime, ctd: &Containerd) -> Pod {
        let logs = ctd.dir.join("pod-logs");
        std::fs::create_dir_all(&logs).unwrap();
        let config = cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: "wasm-pod".into(),
                uid: format!("carnac-test-{}", std::process::id()),
                namespace: "default".into(),
                attempt: 0,
            }),
            log_directory: logs.display().to_string(),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: format!("/{}", ctd.cgroup_dir),
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(Pod::kubelet_namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut rt = rt;
        let id = rt
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: "carnac".into(),
            })
            .await
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", ctd.log_tail()))
            .into_inner()
            .pod_sandbox_id;
        Pod { rt, id, config, logs }
    }

    /// The namespaces as the kubelet sets them for a pod and its containers,
    /// except the network: the node's (`hostNetwork: true`). A PID namespace
    /// per container (`shareProcessNamespace: false`, the default), IPC
    /// shared in the pod. (With a shared PID namespace, youki's libcontainer
    /// 0.6 cannot mount a container's cgroup on cgroup v1: it looks up its
    /// in-namespace PID in the node's /proc.)
    fn kubelet_namespaces() -> cri::NamespaceOption {
        cri::NamespaceOption {
            network: cri::NamespaceMode::Node as i32,
            pid: cri::NamespaceMode::Container as i32,
            ipc: cri::NamespaceMode::Pod as i32,
            ..Default::default()
        }
    }

    async fn run(&mut self, spec: Spec<'_>) -> String {
        let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        let config = cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata { name: spec.name.into(), attempt: 0 }),
            image: Some(cri::ImageSpec { image: spec.image.into(), ..Default::default() }),
            command: s(spec.command),
            args: s(spec.args),
            envs: spec.env.iter().map(|(k, v)| cri::KeyValue { key: k.to_string(), value: v.to_string() }).collect(),
            log_path: format!("{}.log", spec.name),
            linux: Some(cri::LinuxContainerConfig {
                resources: Some(cri::LinuxContainerResources {
                    memory_limit_in_bytes: spec.memory,
                    ..Default::default()
                }),
                security_context: Some(cri::LinuxContainerSecurityContext {
                    namespace_options: Some(Pod::kubelet_namespaces()),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        let id = self
            .rt
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: self.id.clone(),
                config: Some(config),
                sandbox_config: Some(self.config.clone()),
            })
            .await
            .unwrap_or_else(|e| panic!("CreateContainer {}: {e}", spec.name))
            .into_inner()
            .container_id;
        self.rt
            .start_container(cri::StartContainerRequest { container_id: id.clone() })
            .await
            .unwrap_or_else(|e| panic!("StartContainer {}: {e}", spec.name));
        id
    }

    /// Waits for the container to exit: its exit code.
    async fn exit_code(&mut self, id: &str) -> i32 {
        let start = Instant::now();
        loop {
            let status = self
                .rt
                .container_status(cri::ContainerStatusRequest { container_id: id.into(), verbose: false })
                .await
                .unwrap()
                .into_inner()
                .status
                .unwrap();
            if status.state == cri::ContainerState::ContainerExited as i32 {
                return status.exit_code;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "container {id} still running after 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The container's log as the kubelet's `kubectl logs` reads it: (stream, line) pairs.
    fn log(&self, name: &str) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(self.logs.join(format!("{name}.log"))).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                // "TIMESTAMP STREAM TAG CONTENT" (TAG: F for a full line, P for a part)
                let mut parts = l.splitn(4, ' ');
                let (_, stream, _, content) = (parts.next()?, parts.next()?, parts.next()?, parts.next().unwrap_or(""));
                Some((stream.to_string(), content.to_string()))
            })
            .collect()
    }

    async fn stop(&mut self, id: &str, grace_seconds: i64) {
        self.rt
            .stop_container(cri::StopContainerRequest { container_id: id.into(), timeout: grace_seconds })
            .await
            .unwrap();
    }

    /// Removes every container, then the sandbox (what the kubelet does when a pod is deleted).
    async fn remove(mut self) {
        let containers = self.rt.list_containers(cri::ListContainersRequest::default()).await.unwrap().into_inner();
        for c in containers.containers {
            self.rt.stop_container(cri::StopContainerRequest { container_id: c.id.clone(), timeout: 5 }).await.unwrap();
            self.rt.remove_container(cri::RemoveContainerRequest { container_id: c.id }).await.unwrap();
        }
        self.rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: self.id.clone() }).await.unwrap();
        self.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: self.id.clone() }).await.unwrap();
        let pods = self.rt.list_pod_sandbox(cri::ListPodSandboxRequest::default()).await.unwrap().into_inner();
        assert!(pods.items.is_empty(), "sandboxes left: {:?}", pods.items);
        let containers = self.rt.list_containers(cri::ListContainersRequest::default()).await.unwrap().into_inner();
        assert!(containers.containers.is_empty(), "containers left");
    }
}

fn line(stream: &str, text: &str) -> (String, String) {
    (stream.to_string(), text.to_string())
}

#[test]
fn a_pod_runs_on_carnac_through_the_cri_plugin() {
    if let Some(reason) = unsupported() {
        eprintln!("SKIPPED CRI test: {reason}");
        return;
    }
    install_tools();
    let busybox = std::fs::read(static_busybox()).unwrap();
    let started = Instant::now();
    let mut ctd = Containerd::start_cri(PAUSE);

    // The images, in the CRI plugin's namespace: the pause image (a Linux
    // binary), the guest programs, and the example function-host image.
    let wasm = |t: &str| wat::parse_str(t).unwrap();
    let (hello, echo, spin, bomb) = (wasm(guests::HELLO), wasm(guests::ECHO), wasm(guests::SPIN), wasm(guests::BOMB));
    ctd.import(
        "pause.tar",
        &oci::image(
            PAUSE,
            serde_json::json!({ "Entrypoint": ["/busybox", "sleep", "2147483647"] }),
            &[oci::File { path: "busybox", data: &busybox, mode: 0o755 }],
        ),
    );
    ctd.import(
        "programs.tar",
        &oci::image(
            PROGRAMS,
            serde_json::json!({ "Entrypoint": ["/hello.wasm"], "Env": ["PATH=/bin", "FROM_IMAGE=image value"] }),
            &[
                oci::File { path: "hello.wasm", data: &hello, mode: 0o644 },
                oci::File { path: "bin/echo.wasm", data: &echo, mode: 0o644 },
                oci::File { path: "spin.wasm", data: &spin, mode: 0o644 },
                oci::File { path: "bomb.wasm", data: &bomb, mode: 0o644 },
            ],
        ),
    );
    ctd.import(
        "serve.tar",
        &oci::image(
            SERVE,
            serde_json::json!({ "Entrypoint": ["/app/carnac.toml"] }),
            &[
                oci::File {
                    path: "app/carnac.toml",
                    data: include_bytes!("../../../deploy/kubernetes/example/carnac.toml"),
                    mode: 0o644,
                },
                oci::File {
                    path: "app/hello-handler.wat",
                    data: include_bytes!("../../../examples/hello-handler.wat"),
                    mode: 0o644,
                },
            ],
        ),
    );

    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    tokio.block_on(async {
        let mut pod = Pod::start(connect(&ctd.sock).await, &ctd).await;
        eprintln!("ok: pod sandbox {} (Linux pause container) running under the carnac handler", &pod.id[..12]);

        // The image's entrypoint: exit status and both streams in the CRI log.
        let id = pod.run(Spec { name: "hello", ..Default::default() }).await;
        assert_eq!(pod.exit_code(&id).await, 7);
        let log = pod.log("hello");
        assert!(log.contains(&line("stdout", "hello from carnac")), "{log:?}");
        assert!(log.contains(&line("stderr", "a line on stderr")), "{log:?}");
        eprintln!("ok: exit code 7, stdout and stderr in the CRI log");

        // command + args + env as a pod spec gives them (env merged with the image's).
        let id = pod
            .run(Spec {
                name: "echo",
                command: &["echo.wasm"],
                args: &["one", "two words"],
                env: &[("GREETING", "hi there")],
                ..Default::default()
            })
            .await;
        assert_eq!(pod.exit_code(&id).await, 0);
        let out: Vec<String> = pod.log("echo").into_iter().filter(|(s, _)| s == "stdout").map(|(_, l)| l).collect();
        let args_end = out.iter().position(|l| l == "ENV").expect("ENV section");
        assert_eq!(out[..args_end], ["ARGS", "echo.wasm", "one", "two words"]);
        for want in ["PATH=/bin", "FROM_IMAGE=image value", "GREETING=hi there"] {
            assert!(out[args_end..].iter().any(|l| l == want), "{want} missing: {out:?}");
        }
        eprintln!("ok: command, args and env");

        // resources.limits.memory: the CRI plugin mounts the container's cgroup,
        // the guest's memory.grow is refused below the limit.
        let id = pod.run(Spec { name: "bomb", command: &["/bomb.wasm"], memory: 64 << 20, ..Default::default() }).await;
        assert_eq!(pod.exit_code(&id).await, 42);
        let log = pod.log("bomb");
        let mib: u64 = log
            .iter()
            .find_map(|(_, l)| l.strip_prefix("refused after ")?.strip_suffix(" MiB")?.parse().ok())
            .unwrap_or_else(|| panic!("{log:?}"));
        assert!((16..64).contains(&mib), "grew {mib} MiB under a 64 MiB limit");
        eprintln!("ok: a 64 MiB limit refused the memory bomb after {mib} MiB (exit 42)");

        // StopContainer: SIGTERM, then SIGKILL after the grace period; the guest ends at SIGTERM.
        let id = pod.run(Spec { name: "spin", command: &["/spin.wasm"], ..Default::default() }).await;
        let start = Instant::now();
        while !pod.log("spin").contains(&line("stdout", "spinning")) {
            assert!(start.elapsed() < Duration::from_secs(30), "the spinning guest did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let stopping = Instant::now();
        pod.stop(&id, 30).await;
        assert_eq!(pod.exit_code(&id).await, 143);
        assert!(stopping.elapsed() < Duration::from_secs(10), "SIGTERM took {:?}", stopping.elapsed());
        eprintln!(
            "ok: StopContainer ended a spinning guest in {:?} (143, before the grace period)",
            stopping.elapsed()
        );

        // The function host, on the pod's (here the node's) network; StopContainer drains it.
        let addr = format!("127.0.0.1:{}", free_port());
        let id = pod
            .run(Spec {
                name: "host",
                image: SERVE,
                env: &[("CARNAC_LISTEN", addr.as_str())],
                memory: 128 << 20,
                ..Default::default()
            })
            .await;
        let start = Instant::now();
        let response = loop {
            match http_get(&addr, "/hello") {
                Ok(r) => break r,
                Err(e) => {
                    assert!(start.elapsed() < Duration::from_secs(30), "no answer on {addr}: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("Hello from a fresh Carnac instance!\n"), "{response}");
        assert!(http_get(&addr, "/health").unwrap().starts_with("HTTP/1.1 200"));
        pod.stop(&id, 30).await;
        assert_eq!(pod.exit_code(&id).await, 0);
        let log = pod.log("host");
        assert!(log.iter().any(|(s, l)| s == "stderr" && l.contains("listening on")), "{log:?}");
        eprintln!("ok: the function host answered on {addr}, /health 200, drained on StopContainer (exit 0)");

        pod.remove().await;
        eprintln!("ok: containers and pod sandbox removed");
    });
    drop(tokio);
    ctd.stop_and_check_clean();
    eprintln!("ok: containerd stopped, no process, mount or cgroup left; whole test {:?}", started.elapsed());
}
