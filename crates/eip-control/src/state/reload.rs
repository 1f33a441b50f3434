//! `reload`: a configuration file applied over the spec in force as one change,
//! through the same single writer as every other change, with what differs said
//! by name.

use super::diff::SpecDiff;
use super::edits;
use super::writer::{ControlPlane, Journaled};
use crate::api::{ApiError, Data, Reply};
use crate::config;
use std::path::{Path, PathBuf};

impl ControlPlane {
    /// Applies a configuration file over the spec in force as one transaction:
    /// the same validation, atomicity and acknowledgement as any change. `file`
    /// defaults to the daemon's own configuration ([`Self::with_config_path`]).
    /// The reply says what differs; a file equal to the spec in force makes no
    /// new version.
    pub fn reload(&self, file: Option<&Path>, if_version: Option<u64>, dry_run: bool) -> Reply {
        self.reload_with(file, if_version, dry_run, false)
    }

    /// [`reload`](Self::reload); with `blackhole_ok`, also a file that leaves a
    /// region that has EIPs with no usable path.
    pub fn reload_with(
        &self,
        file: Option<&Path>,
        if_version: Option<u64>,
        dry_run: bool,
        blackhole_ok: bool,
    ) -> Reply {
        let Some(path) = file.or(self.config_path.as_deref()) else {
            return Reply::error(
                self.version(),
                ApiError::invalid("reload: this daemon has no configuration file; name one"),
            );
        };
        let new = match config::load_spec(path) {
            Ok(spec) => spec,
            Err(e) => return Reply::error(self.version(), ApiError::invalid(e.to_string())),
        };
        let mut new = new;
        edits::intent(&mut new);
        let journaled = new.clone();
        let mut diff = SpecDiff::default();
        let reply = self.change(
            |spec| {
                diff = SpecDiff::between(spec, &new);
                *spec = new;
                Ok(())
            },
            Journaled::Spec(&journaled),
            1,
            if_version,
            (dry_run, blackhole_ok),
        );
        if reply.error.is_some() && reply.data.is_none() {
            return reply;
        }
        let (previous_version, unchanged) = match reply.data {
            Some(Data::Applied {
                previous_version,
                unchanged,
                ..
            }) => (previous_version, unchanged),
            Some(Data::Validated { unchanged, .. }) => (reply.version, unchanged),
            _ => (reply.version, diff.is_empty()),
        };
        Reply {
            data: Some(Data::Reloaded {
                file: path.display().to_string(),
                previous_version,
                unchanged,
                dry_run,
                diff: Box::new(diff),
            }),
            ..reply
        }
    }

    /// The configuration file `reload` reads when the request names none.
    pub fn with_config_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_path = Some(path.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use crate::api::Data;
    use crate::state::testkit::{setup, state_file, EXAMPLE};
    use std::fs;

    #[test]
    fn reload_applies_the_file_as_one_change_and_says_what_differs() {
        let (dir, cp, sink) = setup("reload");
        let config = dir.join("pop.toml");
        let cp = cp.with_config_path(&config);
        // The same file: nothing to do.
        let r = cp.reload(None, None, false);
        assert!(r.ok, "{r:?}");
        assert!(matches!(
            r.data,
            Some(Data::Reloaded {
                unchanged: true,
                ..
            })
        ));
        assert_eq!(r.version, 1);

        // One EIP more, checked first, then applied.
        let edited = format!(
            "{EXAMPLE}\n[[eips]]\naddress = \"192.0.2.77\"\nregion = \"beijing\"\nbackend = \"10.1.0.77\"\n"
        );
        let other = dir.join("other.toml");
        fs::write(&other, &edited).unwrap();
        let r = cp.reload(Some(&other), None, true);
        let Some(Data::Reloaded {
            diff,
            dry_run: true,
            unchanged: false,
            ..
        }) = &r.data
        else {
            panic!("{r:?}");
        };
        assert_eq!(diff.eips.added, vec!["192.0.2.77"]);
        assert_eq!(cp.version(), 1);
        let r = cp.reload(Some(&other), Some(1), false);
        assert!(r.ok && r.version == 2, "{r:?}");
        assert_eq!(*sink.published.lock().unwrap(), vec![2]);
        assert_eq!(state_file(&dir).version, 2);

        // A broken file changes nothing and says why.
        fs::write(&other, edited.replace("10.1.0.77", "10.1.0.10")).unwrap();
        let r = cp.reload(Some(&other), None, false);
        let e = r.error.expect("refused");
        assert!(e.message.contains("10.1.0.10"), "{e:?}");
        assert_eq!(cp.version(), 2);
        // Back to the daemon's own file: the EIP goes again.
        let r = cp.reload(None, None, false);
        let Some(Data::Reloaded { diff, .. }) = &r.data else {
            panic!("{r:?}");
        };
        assert_eq!(
            (r.version, diff.eips.removed.clone()),
            (3, vec!["192.0.2.77".to_string()])
        );
    }
}
