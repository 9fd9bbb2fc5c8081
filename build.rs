//! Link settings for the `torch`/`cuda` features (see ../shared/libtorch.md in the design notes):
//! an rpath to libtorch so binaries and tests start without LD_LIBRARY_PATH, and libtorch_cuda
//! kept in the link so `tch::Cuda::is_available()` can be true.

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_TORCH").is_some() {
        if let Some(lt) = std::env::var_os("LIBTORCH") {
            // Canonicalized: libtorch finds libcudart through `$ORIGIN/../../nvidia/...`.
            let lib = std::fs::canonicalize(std::path::Path::new(&lt).join("lib")).unwrap_or_else(|e| {
                panic!("LIBTORCH={} has no lib/ ({e}); run scripts/setup.sh", std::path::Path::new(&lt).display())
            });
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        }
    }
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
