//! Compiles the XDP filter program (bpf/eip_xdp.c) into OUT_DIR; the AF_XDP driver
//! embeds the object with `include_bytes!`.
//!
//! Needs clang with the BPF target and the kernel UAPI headers (`linux-libc-dev`);
//! libbpf is not needed, the program defines its own SEC/map macros. Only this crate
//! (and so only `eipd`) needs clang: the pipeline, the control library and `eipctl`
//! build anywhere.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCE: &str = "bpf/eip_xdp.c";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-changed={SOURCE}");

    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("eip_xdp.o");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());

    let mut cmd = Command::new(&clang);
    cmd.args(["-O2", "-g", "-target", "bpf", "-Wall"]);
    // asm/types.h lives under the multiarch include directory on Debian/Ubuntu.
    if let Some(dir) = multiarch_include() {
        cmd.arg(format!("-I{}", dir.display()));
    }
    cmd.arg("-c").arg(manifest.join(SOURCE)).arg("-o").arg(&out);

    let status = match cmd.status() {
        Ok(status) => status,
        Err(e) => fail(&format!(
            "cannot run `{clang}` ({e}).\n\
             The AF_XDP driver compiles the XDP program {SOURCE} with clang's BPF target.\n\
             Install it (Debian/Ubuntu: `apt-get install -y clang llvm linux-libc-dev`), or\n\
             point the CLANG environment variable at a clang binary. Only `eipd` needs this:\n\
             `cargo build -p eipctl` and the pipeline build without clang."
        )),
    };
    if !status.success() {
        fail(&format!(
            "`{clang}` failed to compile {SOURCE} ({status}); see the compiler output above.\n\
             Missing <linux/bpf.h> or <asm/types.h> means the kernel UAPI headers are not installed\n\
             (Debian/Ubuntu: `apt-get install -y linux-libc-dev`)."
        ));
    }
}

/// `/usr/include/<arch>-linux-gnu` for the target, if it exists.
fn multiarch_include() -> Option<PathBuf> {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").ok()?;
    let triple = match arch.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "riscv64" => "riscv64-linux-gnu",
        "powerpc64" => "powerpc64le-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        _ => return None,
    };
    let dir = Path::new("/usr/include").join(triple);
    dir.is_dir().then_some(dir)
}

fn fail(msg: &str) -> ! {
    // Cargo shows the panic message with the build script's output.
    panic!("{msg}");
}
