//! OCI image layout tarballs, written by hand (no registry, no tools): what
//! `ctr images import` reads. An image is a root filesystem (one uncompressed
//! tar layer) plus an image config whose `Entrypoint`, `Cmd` and `Env` the
//! container gets; [`wasm_artifact`] writes runwasi's Wasm OCI artifact
//! layout instead (platform `wasm`, the module as an `application/wasm` layer).
// Shared by the tests, each of which uses part of it.
#![allow(dead_code)]

use sha2::{Digest, Sha256};

/// A file in a layer: path (no leading `/`), contents, mode.
pub struct File<'a> {
    pub path: &'a str,
    pub data: &'a [u8],
    pub mode: u32,
}

/// The architecture name OCI uses for this host.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn sha256(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    format!("sha256:{}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// A ustar archive of `files` (directories of their paths included).
pub fn tar(files: &[File<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut dirs: Vec<String> = Vec::new();
    for f in files {
        let parts: Vec<&str> = f.path.split('/').collect();
        for i in 1..parts.len() {
            let dir = format!("{}/", parts[..i].join("/"));
            if !dirs.contains(&dir) {
                dirs.push(dir.clone());
                tar_entry(&mut out, &dir, b"", 0o755, b'5');
            }
        }
        tar_entry(&mut out, f.path, f.data, f.mode, b'0');
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn tar_entry(out: &mut Vec<u8>, name: &str, data: &[u8], mode: u32, kind: u8) {
    assert!(name.len() < 100, "tar name too long: {name}");
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |h: &mut [u8; 512], at: usize, width: usize, v: u64| {
        let s = format!("{v:0w$o}\0", w = width - 1);
        h[at..at + width].copy_from_slice(s.as_bytes());
    };
    octal(&mut h, 100, 8, mode as u64);
    octal(&mut h, 108, 8, 0);
    octal(&mut h, 116, 8, 0);
    octal(&mut h, 124, 12, data.len() as u64);
    octal(&mut h, 136, 12, 1_700_000_000);
    h[148..156].copy_from_slice(b"        ");
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
}

/// An OCI layout tarball holding one image named `name` (e.g.
/// `docker.io/carnac-test/hello:1`): `config` is the image config's `config`
/// object (Entrypoint, Cmd, Env), the layer holds `files`.
pub fn image(name: &str, config: serde_json::Value, files: &[File<'_>]) -> Vec<u8> {
    let layer = tar(files);
    let layer_digest = sha256(&layer);
    let image_config = serde_json::json!({
        "architecture": host_arch(),
        "os": "linux",
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
    });
    layout(
        name,
        image_config,
        "application/vnd.oci.image.config.v1+json",
        &[("application/vnd.oci.image.layer.v1.tar", layer)],
    )
}

/// runwasi's Wasm OCI artifact: platform `wasm`/`wasip1`, the module as a
/// layer of type `application/wasm`, no root filesystem.
pub fn wasm_artifact(name: &str, module: &[u8]) -> Vec<u8> {
    let image_config = serde_json::json!({
        "architecture": "wasm",
        "os": "wasip1",
        "config": { "Entrypoint": ["/module.wasm"] },
        "rootfs": { "type": "layers", "diff_ids": [sha256(module)] },
    });
    layout(name, image_config, "application/vnd.wasm.config.v0+json", &[("application/wasm", module.to_vec())])
}

fn layout(name: &str, image_config: serde_json::Value, config_type: &str, layers: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let config_bytes = serde_json::to_vec(&image_config).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": config_type, "digest": sha256(&config_bytes), "size": config_bytes.len() },
        "layers": layers.iter().map(|(t, l)| serde_json::json!({
            "mediaType": t, "digest": sha256(l), "size": l.len(),
        })).collect::<Vec<_>>(),
    });
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(&manifest_bytes),
            "size": manifest_bytes.len(),
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": name.rsplit(':').next().unwrap(),
            },
        }],
    });
    let blob_path = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    let mut blobs = vec![
        (blob_path(&sha256(&config_bytes)), config_bytes.clone()),
        (blob_path(&sha256(&manifest_bytes)), manifest_bytes.clone()),
    ];
    for (_, l) in layers {
        blobs.push((blob_path(&sha256(l)), l.clone()));
    }
    let index_bytes = serde_json::to_vec(&index).unwrap();
    let oci_layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    let mut files = vec![
        File { path: "oci-layout", data: oci_layout, mode: 0o644 },
        File { path: "index.json", data: &index_bytes, mode: 0o644 },
    ];
    for (p, b) in &blobs {
        files.push(File { path: p, data: b, mode: 0o644 });
    }
    tar(&files)
}
