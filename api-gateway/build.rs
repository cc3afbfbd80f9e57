//! Rebuilds the gateway when a file of the embedded web site changes (`include_dir!` does not
//! notice new files by itself).

fn main() {
    println!("cargo:rerun-if-changed=web");
}
