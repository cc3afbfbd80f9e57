//! Generates the tonic/prost code for `proto/marquee.proto` (feature `grpc` only).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/marquee.proto");
    if std::env::var_os("CARGO_FEATURE_GRPC").is_some() {
        tonic_prost_build::configure().compile_protos(&["proto/marquee.proto"], &["proto"])?;
    }
    Ok(())
}
