//! A real S3-compatible server (moto) on 127.0.0.1 for the remote-cache tests.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server; killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
}

fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("S2R_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let local = super::repo_root().join(".venv-moto/bin/moto_server");
    assert!(
        local.is_file(),
        "moto_server not found: run scripts/setup-moto.sh (scripts/test.sh does) or set S2R_MOTO_SERVER"
    );
    local
}

impl Moto {
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "moto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A raw (unsigned) HTTP request; moto does not check signatures. Returns the status code.
    pub fn http(&self, method: &str, path: &str, body: &[u8]) -> u16 {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
    }

    /// Overwrites `path` in `bucket` through a signed S3 client (a tampering attacker or a bug).
    pub fn put_object(&self, bucket: &str, path: &str, body: &[u8]) {
        use object_store::ObjectStore;
        let s3 = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_access_key_id("testing")
            .with_secret_access_key("testing")
            .with_region("us-east-1")
            .build()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(s3.put(&object_store::path::Path::from(path), body.to_vec().into())).unwrap();
    }

    pub fn create_bucket(&self, bucket: &str) {
        let code = self.http("PUT", &format!("/{bucket}"), b"");
        assert_eq!(code, 200, "create bucket");
    }

    /// Environment for an s2r-pipe process talking to this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
