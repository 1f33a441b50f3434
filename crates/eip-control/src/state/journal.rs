//! The journal: every committed change appended to `<state file>.journal` and
//! fsynced before the reply, so that a change costs what it changes on disk too.
//! The state file is the snapshot the journal starts from; compaction writes a
//! newer snapshot in the background and keeps only the records after it.
//!
//! A record is `length (u32 LE) | crc32 of the payload (u32 LE) | payload`, the
//! payload a JSON object `{"version": N, "ops": [...]}` (the ops as the control
//! socket takes them) or `{"version": N, "spec": {...}}` (a whole description:
//! `reload`). Reading stops at the first record that is cut short or whose
//! checksum fails: if it is the last one (a crash while appending), it is
//! ignored and reported; anything after it means the file was damaged, and
//! the daemon refuses to start rather than lose changes silently.
//!
//! Records at or below the snapshot's version were already compacted into it
//! (a crash between the snapshot's rename and the journal's rotation leaves
//! them) and are skipped; the rest must follow the snapshot without a gap.

use super::store::StateError;
use crate::api::Op;
use eip_dataplane::tables::PopSpec;
use serde::Serialize;
use serde_json::Value;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Bytes before each payload: its length and its checksum.
const HEADER: usize = 8;
/// A payload larger than this is not a record (a damaged length field).
const MAX_RECORD: u32 = 1 << 30;

/// What a record says changed.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Entry {
    /// Ops applied in order, all or nothing (one request).
    Ops(Vec<Op>),
    /// The whole description replaced (`reload`).
    Spec(Box<PopSpec>),
}

/// One committed change: the version it made.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Record {
    pub(super) version: u64,
    pub(super) entry: Entry,
}

#[derive(Serialize)]
struct OpsRef<'a> {
    version: u64,
    ops: &'a [Op],
}

#[derive(Serialize)]
struct SpecRef<'a> {
    version: u64,
    spec: &'a PopSpec,
}

/// The bytes of one record, header included.
pub(super) fn encode(version: u64, entry: EntryRef<'_>) -> Vec<u8> {
    let mut bytes = vec![0u8; HEADER];
    let written = match entry {
        EntryRef::Ops(ops) => serde_json::to_writer(&mut bytes, &OpsRef { version, ops }),
        EntryRef::Spec(spec) => serde_json::to_writer(&mut bytes, &SpecRef { version, spec }),
    };
    // Serializing plain data into a Vec cannot fail.
    written.expect("journal record serializes");
    let len = (bytes.len() - HEADER) as u32;
    let crc = crc32fast::hash(&bytes[HEADER..]);
    bytes[..4].copy_from_slice(&len.to_le_bytes());
    bytes[4..HEADER].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// A record to write, borrowed from the request.
#[derive(Debug, Clone, Copy)]
pub(super) enum EntryRef<'a> {
    Ops(&'a [Op]),
    Spec(&'a PopSpec),
}

/// What reading a journal found.
#[derive(Debug, Default)]
pub(super) struct Replay {
    pub(super) records: Vec<Record>,
    /// Bytes of whole, valid records from the start.
    pub(super) valid_len: u64,
    /// Why bytes after `valid_len` were ignored (a record cut short or
    /// damaged at the end of the file).
    pub(super) ignored_tail: Option<String>,
}

/// The journal file next to the state file `state`.
pub(super) fn path_for(state: &Path) -> PathBuf {
    let mut name = state
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "state".into());
    name.push(".journal");
    state.with_file_name(name)
}

/// Reads every record of the journal at `path` (none if there is no file).
///
/// # Errors
/// An unreadable file, a symbolic link, or damage before the last record.
pub(super) fn read(path: &Path) -> Result<Replay, StateError> {
    refuse_symlink(path)?;
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => f
            .read_to_end(&mut bytes)
            .map_err(|source| StateError::Read {
                path: path.to_owned(),
                source,
            })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Replay::default()),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    decode(path, &bytes)
}

fn decode(path: &Path, bytes: &[u8]) -> Result<Replay, StateError> {
    let mut replay = Replay::default();
    let mut at = 0usize;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let problem = if rest.len() < HEADER {
            Some(format!("{} bytes of a record header", rest.len()))
        } else {
            let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
            let crc = u32::from_le_bytes(rest[4..HEADER].try_into().expect("4 bytes"));
            let end = HEADER + len as usize;
            if len > MAX_RECORD || rest.len() < end {
                Some(format!(
                    "a record of {len} bytes with {} present",
                    rest.len() - HEADER
                ))
            } else if crc32fast::hash(&rest[HEADER..end]) != crc {
                if rest.len() > end {
                    return Err(corrupt(
                        path,
                        at,
                        "checksum mismatch, with records after it",
                    ));
                }
                Some(format!("a record of {len} bytes whose checksum fails"))
            } else {
                let record = parse(&rest[HEADER..end]).map_err(|m| corrupt(path, at, &m))?;
                replay.records.push(record);
                at += end;
                replay.valid_len = at as u64;
                None
            }
        };
        if let Some(problem) = problem {
            replay.ignored_tail = Some(format!(
                "journal {}: ignored {problem} at byte {at} (a change cut short by a crash; \
                 it was never acknowledged)",
                path.display()
            ));
            break;
        }
    }
    Ok(replay)
}

fn parse(payload: &[u8]) -> Result<Record, String> {
    let value: Value = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    let Value::Object(mut object) = value else {
        return Err("a record is a JSON object".into());
    };
    let version = object
        .get("version")
        .and_then(Value::as_u64)
        .ok_or("a record has a \"version\"")?;
    let entry = if let Some(spec) = object.remove("spec") {
        Entry::Spec(Box::new(
            serde_json::from_value(spec).map_err(|e| format!("spec: {e}"))?,
        ))
    } else if let Some(Value::Array(ops)) = object.remove("ops") {
        Entry::Ops(
            ops.into_iter()
                .map(|op| Op::from_json(op).map_err(|e| e.message))
                .collect::<Result<_, _>>()?,
        )
    } else {
        return Err("a record has \"ops\" or \"spec\"".into());
    };
    Ok(Record { version, entry })
}

fn corrupt(path: &Path, at: usize, message: &str) -> StateError {
    StateError::Syntax {
        path: path.to_owned(),
        message: format!(
            "journal record at byte {at}: {message}; the journal was damaged after it was \
             written (move it aside to start from the state file alone, losing its changes)"
        ),
    }
}

pub(super) fn refuse_symlink(path: &Path) -> Result<(), StateError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(StateError::Symlink {
            path: path.to_owned(),
            target: fs::read_link(path).unwrap_or_default(),
        }),
        _ => Ok(()),
    }
}

/// The journal open for appending (opened at the first append).
#[derive(Debug)]
pub(super) struct Journal {
    path: PathBuf,
    file: Option<File>,
    len: u64,
}

impl Journal {
    pub(super) fn new(path: PathBuf) -> Self {
        Journal {
            path,
            file: None,
            len: 0,
        }
    }

    /// Bytes in the journal (after opening).
    pub(super) fn len(&mut self) -> Result<u64, StateError> {
        self.open()?;
        Ok(self.len)
    }

    fn open(&mut self) -> Result<&mut File, StateError> {
        if self.file.is_none() {
            refuse_symlink(&self.path)?;
            // Owner-only: the records name customers' addresses.
            let file = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&self.path)
                .map_err(|e| self.error("open", e))?;
            file.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(|e| self.error("chmod", e))?;
            self.len = file.metadata().map_err(|e| self.error("stat", e))?.len();
            self.file = Some(file);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }

    /// Appends one record and fsyncs it. Returns the length before it, for
    /// [`truncate`](Self::truncate) if the change is then not put in force.
    ///
    /// # Errors
    /// The step that failed; the journal is cut back to where it was.
    pub(super) fn append(&mut self, version: u64, entry: EntryRef<'_>) -> Result<u64, StateError> {
        let bytes = encode(version, entry);
        let before = self.len()?;
        crash_point("before_append");
        let file = self.open()?;
        let written = file
            .write_all(&bytes)
            .map_err(|e| ("write", e))
            .and_then(|()| {
                crash_point("after_append");
                file.sync_data().map_err(|e| ("fsync", e))
            });
        if let Err((step, e)) = written {
            // A record cut short would be ignored at the next start anyway;
            // cutting it now keeps later records readable.
            let _ = file.set_len(before);
            return Err(self.error(step, e));
        }
        self.len = before + bytes.len() as u64;
        crash_point("after_fsync");
        Ok(before)
    }

    /// Cuts the journal back to `len` bytes (a change that was not put in
    /// force after all).
    ///
    /// # Errors
    /// The truncation or its sync failed.
    pub(super) fn truncate(&mut self, len: u64) -> Result<(), StateError> {
        let file = self.open()?;
        file.set_len(len)
            .and_then(|()| file.sync_data())
            .map_err(|e| self.error("truncate", e))?;
        self.len = len;
        Ok(())
    }

    /// Keeps only the bytes from `from` on: written to a temporary file,
    /// fsynced, renamed over the journal, directory fsynced. A crash at any
    /// point leaves the old journal or the new one.
    ///
    /// # Errors
    /// The step that failed; the journal is then unchanged.
    pub(super) fn rotate(&mut self, from: u64) -> Result<(), StateError> {
        let len = self.len()?;
        let mut tail = Vec::new();
        if from < len {
            let mut f = File::open(&self.path).map_err(|e| self.error("reopen", e))?;
            io::Seek::seek(&mut f, io::SeekFrom::Start(from)).map_err(|e| self.error("seek", e))?;
            f.read_to_end(&mut tail)
                .map_err(|e| self.error("read", e))?;
        }
        let tmp = self.path.with_extension("journal.tmp");
        replace_private(&tmp, &self.path, &[&tail], "rotate_before_rename")
            .map_err(|(step, e)| self.error(step, e))?;
        self.file = None;
        sync_dir(&self.path).map_err(|e| self.error("fsync directory", e))?;
        crash_point("rotate_after_rename");
        self.open()?;
        Ok(())
    }

    fn error(&self, step: &'static str, source: io::Error) -> StateError {
        StateError::Write {
            path: self.path.clone(),
            step,
            source,
        }
    }
}

pub(super) fn sync_dir(file: &Path) -> io::Result<()> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|d| d.sync_all())
}

/// Where the crash-consistency tests stop the process: a test child sets
/// `EIP_STATE_CRASH_AT` to a step name, and the process aborts there (no
/// destructor runs, nothing more is written). Compiled in test builds only.
#[cfg(test)]
pub(super) fn crash_point(step: &str) {
    if std::env::var("EIP_STATE_CRASH_AT").is_ok_and(|s| s == step) {
        std::process::abort();
    }
}

#[cfg(not(test))]
#[inline(always)]
pub(super) fn crash_point(_step: &str) {}

/// Replaces `target` with `parts` through `tmp` (same directory): written
/// owner-only (the description names every customer's addresses), fsynced,
/// renamed over `target` (crash point `crash` just before). On failure `tmp` is
/// removed and `target` is unchanged; the caller fsyncs the directory.
///
/// # Errors
/// The step that failed, for the caller's error.
pub(super) fn replace_private(
    tmp: &Path,
    target: &Path,
    parts: &[&[u8]],
    crash: &'static str,
) -> Result<(), (&'static str, io::Error)> {
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(tmp)
            .map_err(|e| ("create temporary file", e))?;
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| ("chmod temporary file", e))?;
        for part in parts {
            f.write_all(part).map_err(|e| ("write", e))?;
        }
        f.sync_all().map_err(|e| ("fsync", e))?;
        crash_point(crash);
        fs::rename(tmp, target).map_err(|e| ("rename", e))
    })();
    if written.is_err() {
        let _ = fs::remove_file(tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{PathRef, RemoveEip};
    use crate::state::testkit::temp_dir;

    fn ops(n: u8) -> Vec<Op> {
        vec![Op::RemoveEip(RemoveEip {
            address: format!("192.0.2.{n}").parse().unwrap(),
        })]
    }

    #[test]
    fn records_round_trip_and_rotation_keeps_the_tail() {
        let dir = temp_dir("journal");
        let path = path_for(&dir.join("state.json"));
        assert_eq!(path, dir.join("state.json.journal"));
        let mut j = Journal::new(path.clone());
        let spec: PopSpec = toml::from_str(crate::state::testkit::EXAMPLE).expect("example parses");
        let a = ops(1);
        let b = vec![Op::RemovePath(PathRef { name: "x".into() })];
        assert_eq!(j.append(2, EntryRef::Ops(&a)).unwrap(), 0);
        let second = j.append(3, EntryRef::Spec(&spec)).unwrap();
        j.append(4, EntryRef::Ops(&b)).unwrap();
        let replay = read(&path).unwrap();
        assert_eq!(replay.ignored_tail, None);
        assert_eq!(
            replay.records,
            vec![
                Record {
                    version: 2,
                    entry: Entry::Ops(a)
                },
                Record {
                    version: 3,
                    entry: Entry::Spec(Box::new(spec.clone()))
                },
                Record {
                    version: 4,
                    entry: Entry::Ops(b.clone())
                },
            ]
        );
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Rotation keeps what follows `second`, and appends go on after it.
        j.rotate(second).unwrap();
        j.append(5, EntryRef::Ops(&b)).unwrap();
        let versions: Vec<u64> = read(&path)
            .unwrap()
            .records
            .iter()
            .map(|r| r.version)
            .collect();
        assert_eq!(versions, vec![3, 4, 5]);
        assert!(!dir.join("state.json.journal.tmp").exists());
    }

    #[test]
    fn a_torn_or_damaged_last_record_is_ignored_at_every_cut() {
        let dir = temp_dir("torn");
        let path = dir.join("j");
        let mut j = Journal::new(path.clone());
        let first = ops(1);
        j.append(2, EntryRef::Ops(&first)).unwrap();
        let whole_first = j.len().unwrap();
        j.append(3, EntryRef::Ops(&ops(2))).unwrap();
        let bytes = fs::read(&path).unwrap();
        // Every cut inside the second record: the first one stays, the rest is
        // reported.
        for cut in whole_first as usize..bytes.len() {
            let replay = decode(&path, &bytes[..cut]).unwrap();
            assert_eq!(replay.records.len(), 1, "cut at {cut}");
            assert_eq!(replay.valid_len, whole_first);
            assert_eq!(replay.ignored_tail.is_some(), cut > whole_first as usize);
        }
        // Every cut inside the first record: nothing.
        for cut in 0..whole_first as usize {
            let replay = decode(&path, &bytes[..cut]).unwrap();
            assert!(replay.records.is_empty(), "cut at {cut}");
        }
        // A flipped byte in the last record: ignored, said why.
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 0x20;
        let replay = decode(&path, &flipped).unwrap();
        assert_eq!(replay.records.len(), 1);
        assert!(
            replay.ignored_tail.unwrap().contains("checksum fails"),
            "says why"
        );
        // A flipped byte in a record followed by others: refused.
        let mut flipped = bytes.clone();
        flipped[HEADER + 3] ^= 0x20;
        let e = decode(&path, &flipped).unwrap_err().to_string();
        assert!(e.contains("byte 0") && e.contains("checksum"), "{e}");
    }

    #[test]
    fn a_symlinked_journal_is_refused() {
        let dir = temp_dir("jlink");
        let path = dir.join("state.json.journal");
        std::os::unix::fs::symlink(dir.join("elsewhere"), &path).unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        let mut j = Journal::new(path);
        assert!(j.append(2, EntryRef::Ops(&ops(1))).is_err());
        assert!(!dir.join("elsewhere").exists());
    }
}
