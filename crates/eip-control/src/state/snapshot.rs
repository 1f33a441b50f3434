//! The state file's bytes: a header, then `{version, spec}` in MessagePack
//! (fields by name, so the serde attributes of the spec types — defaults,
//! skipped fields, unknown fields refused — hold exactly as in the
//! configuration).
//!
//! ```text
//! "EIPSTATE" | format (u32 LE) | crc32 of the body (u32 LE) | body length (u64 LE) | body
//! ```
//!
//! Why not JSON, as before: at 1M EIPs the JSON file is 140 MB and parsing it
//! (addresses as text) took most of a restart; the binary body is about a third
//! of that and reads several times faster. A state file written by an older
//! daemon (JSON, no header) is still read; the next save replaces it.
//!
//! The file is replaced whole (written beside, fsynced, renamed), so a reader
//! never sees half of one; the checksum and length catch a file damaged on disk
//! or cut short, which is refused (as any broken state file) rather than
//! replaced by an older description.

use super::store::StateDoc;
use eip_dataplane::tables::PopSpec;
use serde::Serialize;

const MAGIC: &[u8; 8] = b"EIPSTATE";
/// The body's encoding; a daemon refuses a format it does not know.
const FORMAT: u32 = 1;
const HEADER: usize = 8 + 4 + 4 + 8;

#[derive(Serialize)]
struct DocRef<'a> {
    version: u64,
    spec: &'a PopSpec,
}

/// The state file's bytes for `spec` at `version`.
///
/// # Errors
/// What the encoder reports (a spec that cannot be serialized).
pub(super) fn encode(version: u64, spec: &PopSpec) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(HEADER + 64 * spec.eips.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&[0; 4 + 8]);
    rmp_serde::encode::write_named(&mut out, &DocRef { version, spec })
        .map_err(|e| e.to_string())?;
    let body = &out[HEADER..];
    let crc = crc32fast::hash(body);
    let len = body.len() as u64;
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    out[16..HEADER].copy_from_slice(&len.to_le_bytes());
    Ok(out)
}

/// The document in `bytes`: this format, or the JSON of older daemons.
///
/// # Errors
/// What is wrong with the bytes, for [`StateError::Syntax`](super::StateError::Syntax).
pub(super) fn decode(bytes: &[u8]) -> Result<StateDoc, String> {
    let Some(rest) = bytes.strip_prefix(MAGIC) else {
        return serde_json::from_slice(bytes).map_err(|e| e.to_string());
    };
    if rest.len() < HEADER - MAGIC.len() {
        return Err(format!(
            "cut short: {} bytes, less than the header's {HEADER}",
            bytes.len()
        ));
    }
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let format = word(8);
    if format != FORMAT {
        return Err(format!(
            "format {format}, which this eipd does not read (it reads format {FORMAT}): \
             written by a newer eipd?"
        ));
    }
    let len = u64::from_le_bytes(bytes[16..HEADER].try_into().expect("8 bytes"));
    let body = &bytes[HEADER..];
    if body.len() as u64 != len {
        return Err(format!(
            "the body is {} bytes, the header says {len}: the file was cut short or damaged",
            body.len()
        ));
    }
    if crc32fast::hash(body) != word(12) {
        return Err("checksum mismatch: the file was damaged".into());
    }
    rmp_serde::from_slice(body).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testkit::EXAMPLE;

    fn doc() -> StateDoc {
        StateDoc {
            version: 7,
            spec: toml::from_str(EXAMPLE).unwrap(),
        }
    }

    #[test]
    fn a_document_reads_back_the_same() {
        let d = doc();
        let bytes = encode(d.version, &d.spec).unwrap();
        assert!(bytes.starts_with(b"EIPSTATE\x01\x00\x00\x00"));
        assert_eq!(decode(&bytes).unwrap(), d);
    }

    #[test]
    fn the_json_of_older_daemons_still_reads() {
        let d = doc();
        let json = serde_json::to_vec_pretty(&DocRef {
            version: d.version,
            spec: &d.spec,
        })
        .unwrap();
        assert_eq!(decode(&json).unwrap(), d);
    }

    #[test]
    fn a_damaged_cut_or_unknown_file_is_refused() {
        let d = doc();
        let bytes = encode(d.version, &d.spec).unwrap();
        for cut in [0, 10, HEADER, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(
            decode(&flipped).unwrap_err(),
            "checksum mismatch: the file was damaged"
        );
        let mut newer = bytes.clone();
        newer[8] = 2;
        assert!(decode(&newer).unwrap_err().starts_with("format 2, which"));
        let mut longer = bytes;
        longer.push(0);
        assert!(decode(&longer).unwrap_err().contains("the header says"));
    }
}
