//! The thread that starts the children which must die with `eipd` (BIRD).
//!
//! `PR_SET_PDEATHSIG` (which BIRD is started under, by `setpriv`) fires when
//! the *thread* that forked the child exits, not the process. After `kill -9`
//! every thread of `eipd` exits on its own, and the last one to let go of the
//! file table closes all of `eipd`'s files: AF_XDP sockets and the XDP link,
//! whose release takes a while (a killed `eipd` took 8-52 ms to be gone on
//! the anycast testbed; presumably RCU grace periods, not traced). When the
//! thread that had started BIRD was that last one, BIRD heard of the death
//! only then, and its BGP session closed up to 46 ms late.
//!
//! This thread is started first, before `eipd` opens anything, and gives
//! itself a file table of its own (`unshare(CLONE_FILES)`): it holds only
//! what was open then (standard streams), so its exit closes nothing slow and
//! reaches the point where the kernel signals its children at once, whichever
//! thread goes last. It only forks: no file it opens is ever used by another
//! thread (a child handle carries none: its standard input is `/dev/null`).

use std::io;
use std::process::{Child, Command};
use std::sync::mpsc::{self, Sender};
use std::sync::OnceLock;

type Request = (Command, Sender<io::Result<Child>>);

static SPAWNER: OnceLock<Sender<Request>> = OnceLock::new();

/// Starts the spawner thread (once; later calls do nothing).
///
/// # Errors
/// The thread cannot be created, or its file table cannot be made its own.
pub fn start() -> io::Result<()> {
    if SPAWNER.get().is_some() {
        return Ok(());
    }
    let (requests, incoming) = mpsc::channel::<Request>();
    let (ready, started) = mpsc::channel();
    std::thread::Builder::new()
        .name("eipd-spawner".into())
        .spawn(move || {
            let own_table =
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_FILES).map_err(io::Error::from);
            let failed = own_table.is_err();
            let _ = ready.send(own_table);
            if failed {
                return;
            }
            for (mut command, reply) in incoming {
                let _ = reply.send(command.spawn());
            }
        })?;
    started
        .recv()
        .map_err(|_| io::Error::other("the spawner thread ended before starting"))??;
    let _ = SPAWNER.set(requests);
    Ok(())
}

/// Spawns `command` from the spawner thread (from this thread when
/// [`start`] was not called: tools and tests that do not run a POP).
///
/// # Errors
/// What [`Command::spawn`] returns, or the spawner thread is gone.
pub fn spawn(mut command: Command) -> io::Result<Child> {
    let Some(spawner) = SPAWNER.get() else {
        return command.spawn();
    };
    let (reply, answer) = mpsc::channel();
    spawner
        .send((command, reply))
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the spawner thread is gone"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_runs_commands_and_reports_what_cannot_start() {
        start().unwrap();
        start().unwrap();
        let mut command = Command::new("sh");
        command.args(["-c", "exit 7"]);
        let status = spawn(command).unwrap().wait().unwrap();
        assert_eq!(status.code(), Some(7));
        let missing = spawn(Command::new("/nonexistent/eipd-test-binary"));
        assert_eq!(missing.unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
