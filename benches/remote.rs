//! Remote-cache benchmark (`cargo bench --bench remote`) against a local moto S3 server
//! (scripts/setup-moto.sh): push and pull of 1,000 small objects and of one 1 GB object —
//! throughput, and the share of time spent verifying (blake3) on pull.
//!
//! `S2R_BENCH_BIG_MB` sets the big object's size (default 1024).

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use s2r_pipe::key::{Fingerprint, KEY_VERSION};
use s2r_pipe::store::remote::Remote;
use s2r_pipe::store::{Manifest, ObjectRef, Store};
use s2r_stages::Artifact;

fn manifest(key: &str, objects: BTreeMap<String, ObjectRef>) -> Manifest {
    Manifest {
        key: key.to_string(),
        stage_id: "bench".into(),
        pipeline: "bench".into(),
        kind: "bench".into(),
        fingerprint: Fingerprint {
            version: KEY_VERSION,
            kind: "bench".into(),
            code: String::new(),
            params: serde_json::Value::Null,
            sources: BTreeMap::new(),
            inputs: BTreeMap::new(),
            global: String::new(),
            device: "cpu".into(),
        },
        outputs: objects,
        seconds: 0.0,
        created_unix: 0,
        versions: BTreeMap::new(),
        checksum: String::new(),
    }
}

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let moto = std::env::var_os("S2R_MOTO_SERVER")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join(".venv-moto/bin/moto_server"));
    assert!(moto.is_file(), "run scripts/setup-moto.sh first");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new(&moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY (of intent): single-threaded set-up before any remote is opened.
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
    {
        use std::io::Write;
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "PUT /bench HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        let mut buf = String::new();
        let _ = std::io::Read::read_to_string(&mut s, &mut buf);
    }
    let dir = tempfile::tempdir().unwrap();
    let src = Store::open(&dir.path().join("src")).unwrap();
    let remote = Remote::open("s3://bench/r").unwrap();
    println!("| benchmark | result |");
    println!("|---|---:|");

    // 1,000 small objects: 1,000 entries of one ~1 KB weights object each.
    let mut manifests = Vec::new();
    for i in 0..1000u32 {
        let bytes: Vec<u8> = (0..1024u32).map(|j| (i.wrapping_mul(31).wrapping_add(j)) as u8).collect();
        let o = src.put("small", &Artifact::Weights(bytes)).unwrap();
        manifests.push(manifest(&format!("{i:064x}"), BTreeMap::from([("w".to_string(), o)])));
    }
    let t = Instant::now();
    for m in &manifests {
        remote.push_entry(&src, m).unwrap();
    }
    let push_small = t.elapsed().as_secs_f64();
    let dst = Store::open(&dir.path().join("dst")).unwrap();
    let t = Instant::now();
    for m in &manifests {
        remote.pull_entry(&dst, &m.key).unwrap().unwrap();
    }
    let pull_small = t.elapsed().as_secs_f64();
    println!("| push 1,000 entries × 1 KB object | {:.2} s ({:.0} objects/s) |", push_small, 1000.0 / push_small);
    println!(
        "| pull 1,000 entries × 1 KB object (verified) | {:.2} s ({:.0} objects/s) |",
        pull_small,
        1000.0 / pull_small
    );

    // One big object.
    let mb: usize = std::env::var("S2R_BENCH_BIG_MB").ok().and_then(|s| s.parse().ok()).unwrap_or(1024);
    let mut big = vec![0u8; mb << 20];
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for c in big.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.copy_from_slice(&x.to_le_bytes()[..c.len()]);
    }
    let o = src.put("big", &Artifact::Weights(big)).unwrap();
    let m = manifest(&format!("{:064x}", 99_999), BTreeMap::from([("w".to_string(), o.clone())]));
    let t = Instant::now();
    remote.push_entry(&src, &m).unwrap();
    let push_big = t.elapsed().as_secs_f64();
    let t = Instant::now();
    remote.pull_entry(&dst, &m.key).unwrap().unwrap();
    let pull_big = t.elapsed().as_secs_f64();
    let bytes = std::fs::read(dst.object_path(&o.hash, &o.ext)).unwrap();
    let t = Instant::now();
    let _ = blake3::hash(&bytes);
    let verify = t.elapsed().as_secs_f64();
    let gb = mb as f64 / 1024.0;
    println!(
        "| push one {mb} MB object (multipart, 16 MB parts) | {push_big:.2} s ({:.0} MB/s) |",
        mb as f64 / push_big
    );
    println!("| pull one {mb} MB object (verified) | {pull_big:.2} s ({:.0} MB/s) |", mb as f64 / pull_big);
    println!(
        "| verification (blake3) of it | {verify:.3} s ({:.1} GB/s, {:.1}% of the pull) |",
        gb / verify,
        100.0 * verify / pull_big
    );
    let _ = server.kill();
    let _ = server.wait();
}
