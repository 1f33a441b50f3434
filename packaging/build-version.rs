//! Build script shared by the `eipd` and `eipctl` crates (`build = "../../packaging/build-version.rs"`):
//! records the commit the binary was built from, for `--version`
//! (`eipd 0.1.0 (abc1234)`, `abc1234-dirty` with uncommitted changes).
//!
//! Sets `EIP_GIT_COMMIT` for the crate: `$EIP_GIT_COMMIT` if set (a packager
//! building from a source tarball), else `git rev-parse --short HEAD` plus `-dirty`
//! when `git status --porcelain` lists anything, else `unknown` (no git, or not a
//! checkout).
//!
//! Cargo reruns it when the crate's sources change (which may make the tree
//! dirty) and when HEAD moves: a commit, a checkout, or a fetch that repacks refs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=EIP_GIT_COMMIT");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.toml");
    let commit = match std::env::var("EIP_GIT_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => from_git().unwrap_or_else(|| "unknown".to_string()),
    };
    println!("cargo:rustc-env=EIP_GIT_COMMIT={commit}");
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn from_git() -> Option<String> {
    let hash = git(&["rev-parse", "--short", "HEAD"]).filter(|h| !h.is_empty())?;
    watch_head();
    let dirty = git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{hash}-dirty") } else { hash })
}

/// Reruns this script when HEAD or the branch it names moves. In a worktree
/// HEAD lives in the worktree's git directory and the refs in the common one.
fn watch_head() {
    let dir = |arg: &str| git(&["rev-parse", "--path-format=absolute", arg]).map(PathBuf::from);
    let (Some(git_dir), Some(common)) = (dir("--git-dir"), dir("--git-common-dir")) else {
        return;
    };
    let mut watched = vec![git_dir.join("HEAD"), git_dir.join("index")];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(common.join(branch));
    }
    watched.push(common.join("packed-refs"));
    for path in watched.iter().filter(|p| Path::exists(p)) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
