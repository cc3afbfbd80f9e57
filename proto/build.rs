//! Generates the tonic/prost code for `proto/marquee.proto`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/marquee.proto");
    tonic_prost_build::configure().compile_protos(&["proto/marquee.proto"], &["proto"])?;
    Ok(())
}
