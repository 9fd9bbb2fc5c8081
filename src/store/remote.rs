//! The shared (remote) cache: the local store's layout on an object store — a local directory
//! (a shared mount) or S3 and compatibles through `object_store`.
//!
//! Pull verifies every object against its hash before it enters the local store, and writes the
//! entry only after all its objects are in place; push uploads objects first and the manifest
//! last (so a remote manifest always names objects that are there) and skips objects the remote
//! already has, which makes it idempotent and safe to interrupt. Transient errors are retried with
//! exponential backoff, then reported; nothing is written locally from a failed pull.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use object_store::path::Path as OPath;
use object_store::{ObjectStore, PutPayload, WriteMultipart};

use super::{Manifest, Store, StoreError};

/// Objects larger than this are uploaded in parts.
const MULTIPART_THRESHOLD: usize = 64 << 20;
const PART_SIZE: usize = 16 << 20;
const ATTEMPTS: u32 = 4;

/// Remote cache failures.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The URL cannot be used.
    #[error("bad remote `{url}`: {message}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The object store failed (after retries).
    #[error("remote `{url}`: {op} `{path}` failed after {attempts} attempt(s): {source}")]
    Store {
        /// The remote.
        url: String,
        /// What was attempted.
        op: &'static str,
        /// The remote path.
        path: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        #[source]
        source: Box<object_store::Error>,
    },
    /// A pulled object does not match its hash: rejected, nothing written.
    #[error("rejected entry `{key}` from `{url}`: object `{hash}` is corrupt or truncated ({message})")]
    Corrupt {
        /// The remote.
        url: String,
        /// The cache key.
        key: String,
        /// The object.
        hash: String,
        /// What was wrong.
        message: String,
    },
    /// A pulled manifest is unreadable.
    #[error("rejected entry `{key}` from `{url}`: bad manifest: {message}")]
    Manifest {
        /// The remote.
        url: String,
        /// The cache key.
        key: String,
        /// Why.
        message: String,
    },
    /// The local store failed.
    #[error(transparent)]
    Local(#[from] StoreError),
    /// A failure injected by `S2R_TEST_FAIL_PUSH_AFTER` (tests of interrupted pushes).
    #[error("push interrupted after {0} object(s) (S2R_TEST_FAIL_PUSH_AFTER)")]
    Injected(usize),
}

/// What a push or pull moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// Entries transferred.
    pub entries: usize,
    /// Objects transferred.
    pub objects: usize,
    /// Objects skipped because the other side had them.
    pub skipped: usize,
    /// Bytes transferred.
    pub bytes: u64,
}

impl std::ops::AddAssign for Transfer {
    fn add_assign(&mut self, o: Transfer) {
        self.entries += o.entries;
        self.objects += o.objects;
        self.skipped += o.skipped;
        self.bytes += o.bytes;
    }
}

/// A remote cache.
pub struct Remote {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: OPath,
    rt: tokio::runtime::Runtime,
    pushed_objects: AtomicUsize,
}

fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

impl Remote {
    /// Opens `url`: `s3://bucket[/prefix]` (endpoint, region and credentials from the usual `AWS_*`
    /// variables; `AWS_ENDPOINT_URL=http://…` allows plain HTTP), `file:///dir` or a plain path.
    pub fn open(url: &str) -> Result<Self, RemoteError> {
        let bad = |m: String| RemoteError::Url { url: url.to_string(), message: m };
        let (store, prefix): (Arc<dyn ObjectStore>, String) = if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket name".into()));
            }
            let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
            let endpoint = std::env::var("AWS_ENDPOINT_URL").or_else(|_| std::env::var("AWS_ENDPOINT")).ok();
            if let Some(ep) = endpoint {
                b = b
                    .with_endpoint(&ep)
                    .with_allow_http(ep.starts_with("http://"))
                    .with_virtual_hosted_style_request(false);
            }
            if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
                b = b.with_region("us-east-1");
            }
            b = b.with_retry(object_store::RetryConfig {
                backoff: object_store::BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(5),
                    base: 2.0,
                },
                max_retries: 3,
                retry_timeout: Duration::from_secs(60),
            });
            (Arc::new(b.build().map_err(|e| bad(e.to_string()))?), prefix.trim_matches('/').to_string())
        } else {
            let dir = url.strip_prefix("file://").unwrap_or(url);
            if dir.is_empty() || url.contains("://") && !url.starts_with("file://") {
                return Err(bad("use `s3://bucket/prefix`, `file:///dir` or a directory path".into()));
            }
            std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
            let fs = object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(|e| bad(e.to_string()))?;
            (Arc::new(fs), String::new())
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self { url: url.to_string(), store, prefix: OPath::from(prefix), rt, pushed_objects: AtomicUsize::new(0) })
    }

    /// The URL it was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The underlying object store (tests use it to tamper with objects).
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Runs a future on the remote's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    fn child(&self, parts: &[&str]) -> OPath {
        let mut p = self.prefix.clone();
        for part in parts {
            p = p.child(*part);
        }
        p
    }

    /// Remote path of an object.
    pub fn object_path(&self, hash: &str, ext: &str) -> OPath {
        self.child(&["objects", &hash[..2], &format!("{hash}.{ext}")])
    }

    /// Remote path of a manifest.
    pub fn entry_path(&self, key: &str) -> OPath {
        self.child(&["entries", &format!("{key}.json")])
    }

    /// Retries `f` on errors other than "not found", with exponential backoff.
    fn retry<T, Fut>(&self, op: &'static str, path: &OPath, f: impl Fn() -> Fut) -> Result<Option<T>, RemoteError>
    where
        Fut: std::future::Future<Output = object_store::Result<T>>,
    {
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=ATTEMPTS {
            match self.rt.block_on(f()) {
                Ok(v) => return Ok(Some(v)),
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) if attempt == ATTEMPTS => {
                    return Err(RemoteError::Store {
                        url: self.url.clone(),
                        op,
                        path: path.to_string(),
                        attempts: attempt,
                        source: Box::new(e),
                    })
                }
                Err(e) => {
                    tracing::warn!("remote {op} {path}: {e}; retrying in {delay:?}");
                    std::thread::sleep(delay);
                    delay *= 2;
                }
            }
        }
        unreachable!("the loop returns on the last attempt")
    }

    fn exists(&self, path: &OPath) -> Result<Option<u64>, RemoteError> {
        Ok(self.retry("head", path, || self.store.head(path))?.map(|m| m.size))
    }

    fn get(&self, path: &OPath) -> Result<Option<Vec<u8>>, RemoteError> {
        self.retry("get", path, || async { self.store.get(path).await?.bytes().await.map(|b| b.to_vec()) })
    }

    fn put(&self, path: &OPath, bytes: &[u8]) -> Result<(), RemoteError> {
        if bytes.len() <= MULTIPART_THRESHOLD {
            let payload = PutPayload::from(bytes.to_vec());
            self.retry("put", path, || self.store.put(path, payload.clone()))?;
            return Ok(());
        }
        self.retry("multipart put", path, || async {
            let upload = self.store.put_multipart(path).await?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            for chunk in bytes.chunks(PART_SIZE) {
                w.wait_for_capacity(4).await?;
                w.write(chunk);
            }
            w.finish().await
        })?;
        Ok(())
    }

    /// Whether the remote has the entry `key`.
    pub fn has_entry(&self, key: &str) -> Result<bool, RemoteError> {
        Ok(self.exists(&self.entry_path(key))?.is_some())
    }

    /// Uploads an entry: its objects first (skipping those already there), the manifest last.
    pub fn push_entry(&self, local: &Store, m: &Manifest) -> Result<Transfer, RemoteError> {
        let mut t = Transfer::default();
        let fail_after: Option<usize> = std::env::var("S2R_TEST_FAIL_PUSH_AFTER").ok().and_then(|v| v.parse().ok());
        for o in m.outputs.values() {
            let path = self.object_path(&o.hash, &o.ext);
            if self.exists(&path)? == Some(o.bytes) {
                t.skipped += 1;
                continue;
            }
            if let Some(n) = fail_after {
                if self.pushed_objects.load(Ordering::SeqCst) >= n {
                    return Err(RemoteError::Injected(n));
                }
            }
            // Verified read: a corrupt local object is never published.
            let bytes = local.read_verified(&o.hash, &o.ext)?;
            self.put(&path, &bytes)?;
            self.pushed_objects.fetch_add(1, Ordering::SeqCst);
            t.objects += 1;
            t.bytes += bytes.len() as u64;
        }
        self.put(&self.entry_path(&m.key), &m.encode())?;
        t.entries += 1;
        Ok(t)
    }

    /// Downloads the entry `key` into `local`: every object verified before it is stored, the
    /// entry written last. `Ok(None)` when the remote does not have it.
    pub fn pull_entry(&self, local: &Store, key: &str) -> Result<Option<(Manifest, Transfer)>, RemoteError> {
        let Some(bytes) = self.get(&self.entry_path(key))? else { return Ok(None) };
        let m = Manifest::decode(&bytes).map_err(|message| RemoteError::Manifest {
            url: self.url.clone(),
            key: key.to_string(),
            message,
        })?;
        if m.key != key {
            return Err(RemoteError::Manifest {
                url: self.url.clone(),
                key: key.to_string(),
                message: format!("it names key `{}`", m.key),
            });
        }
        let mut t = Transfer::default();
        for o in m.outputs.values() {
            let dest = local.object_path(&o.hash, &o.ext);
            if local.object_ok(&o.hash, &o.ext, o.bytes) {
                t.skipped += 1;
                continue;
            }
            let corrupt = |message: String| RemoteError::Corrupt {
                url: self.url.clone(),
                key: key.to_string(),
                hash: o.hash.clone(),
                message,
            };
            let Some(data) = self.get(&self.object_path(&o.hash, &o.ext))? else {
                return Err(corrupt("missing on the remote".into()));
            };
            let actual = blake3::hash(&data).to_hex().to_string();
            if actual != o.hash {
                return Err(corrupt(format!("{} bytes hashing to {actual}", data.len())));
            }
            local.write_atomic(&dest, &data)?;
            t.objects += 1;
            t.bytes += data.len() as u64;
        }
        local.put_entry_only(&m)?;
        t.entries += 1;
        Ok(Some((m, t)))
    }

    /// Keys of every entry on the remote.
    pub fn entry_keys(&self) -> Result<Vec<String>, RemoteError> {
        let prefix = self.child(&["entries"]);
        let listed: Vec<object_store::Result<object_store::ObjectMeta>> =
            self.rt.block_on(self.store.list(Some(&prefix)).collect::<Vec<_>>());
        let mut keys = Vec::new();
        for m in listed {
            let m = m.map_err(|e| RemoteError::Store {
                url: self.url.clone(),
                op: "list",
                path: prefix.to_string(),
                attempts: 1,
                source: Box::new(e),
            })?;
            if let Some(k) = m.location.filename().and_then(|f| f.strip_suffix(".json")) {
                keys.push(k.to_string());
            }
        }
        keys.sort();
        Ok(keys)
    }
}
