//! `reload`: a configuration file applied over the spec in force as one change,
//! through the same single writer as every other change, with what differs said
//! by name.

use super::diff::{BgpDiff, SectionChange, SpecDiff};
use super::edits;
use super::writer::{ControlPlane, Journaled};
use crate::api::{ApiError, Data, Reply};
use crate::config;
use eip_dataplane::tables::PopSpec;
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
        if let Some(Err(e)) = new.bgp.as_ref().map(|b| b.validate()) {
            return Reply::error(
                self.version(),
                ApiError::invalid(format!("{}: [bgp]: {e}", path.display())),
            );
        }
        let journaled = new.clone();
        let mut diff = SpecDiff::default();
        let mut warnings = Vec::new();
        let reply = self.change(
            |spec| {
                diff = SpecDiff::between(spec, &new);
                warnings = self.check_bgp(&diff.bgp, &new)?;
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
                warnings,
            }),
            ..reply
        }
    }

    /// A `[bgp]` that changes: the speaker's check (under the writer's lock, so
    /// nothing is committed when it refuses), and what the operator must be
    /// told about a section added or removed as a whole.
    fn check_bgp(&self, diff: &BgpDiff, new: &PopSpec) -> Result<Vec<String>, ApiError> {
        if diff.is_empty() {
            return Ok(Vec::new());
        }
        let mut warnings = Vec::new();
        match (diff.section, &self.bgp, &new.bgp) {
            (Some(SectionChange::Added), _, _) => warnings.push(
                "[bgp] added: saved, but this eipd was started without [bgp] and runs no BGP \
                 speaker: nothing is announced until eipd restarts"
                    .to_string(),
            ),
            (Some(SectionChange::Removed), Some(_), _) => warnings.push(
                "[bgp] removed: every prefix is withdrawn now; BIRD keeps its sessions (with \
                 nothing announced) until eipd restarts"
                    .to_string(),
            ),
            (Some(SectionChange::Removed), None, _) => {}
            (None, Some(service), Some(section)) => {
                service.check(&new.pop.name, section)?;
                if diff.settings.iter().any(|s| s == "bird") {
                    warnings.push(
                        "bgp.bird changed: the BIRD that runs keeps running; the new binary \
                         is used when BIRD next starts (restart eipd to switch now)"
                            .to_string(),
                    );
                }
            }
            (None, None, _) => warnings.push(
                "[bgp] changed: saved, but this eipd was started without [bgp] and runs no BGP \
                 speaker: it applies when eipd restarts"
                    .to_string(),
            ),
            (None, Some(_), None) => {}
        }
        Ok(warnings)
    }

    /// The configuration file `reload` reads when the request names none.
    pub fn with_config_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_path = Some(path.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use crate::api::{ApiError, Data};
    use crate::state::testkit::{setup, state_file, EXAMPLE};
    use crate::state::BgpService;
    use eip_dataplane::bgp_spec::BgpSpec;
    use std::fs;
    use std::sync::{Arc, Mutex};

    const BGP: &str = "\n[bgp]\nlocal_as = 64497\nrouter_id = \"203.0.113.10\"\n\
        neighbors = [ { address = \"203.0.113.9\", remote_as = 64496 } ]\n\
        prefixes = [ { prefix = \"192.0.2.0/24\" } ]\n";

    /// A speaker that records what it was asked to check and refuses a MED of 666.
    #[derive(Default)]
    struct Speaker(Mutex<Vec<BgpSpec>>);

    impl BgpService for Speaker {
        fn status(&self) -> serde_json::Value {
            serde_json::Value::Null
        }
        fn drain(&self) -> Result<u64, ApiError> {
            Ok(0)
        }
        fn check(&self, _pop: &str, spec: &BgpSpec) -> Result<(), ApiError> {
            self.0.lock().unwrap().push(spec.clone());
            if spec.prefixes.iter().any(|p| p.med == Some(666)) {
                return Err(ApiError::invalid("BIRD refuses: line 7"));
            }
            Ok(())
        }
    }

    fn warnings(r: &crate::api::Reply) -> Vec<String> {
        match &r.data {
            Some(Data::Reloaded { warnings, .. }) => warnings.clone(),
            _ => panic!("{r:?}"),
        }
    }

    #[test]
    fn a_bgp_change_is_validated_checked_by_the_speaker_and_named() {
        let (dir, cp, _sink) = setup("reload-bgp");
        let config = dir.join("pop.toml");
        let with_bgp = format!("{EXAMPLE}{BGP}");
        // Added to a daemon without a BGP task: accepted, saved, with a warning.
        fs::write(&config, &with_bgp).unwrap();
        let cp = cp.with_config_path(&config);
        let r = cp.reload(None, None, false);
        assert!(r.ok && r.version == 2, "{r:?}");
        assert!(warnings(&r)[0].contains("nothing is announced until eipd restarts"));
        assert!(state_file(&dir).spec.bgp.is_some());

        let speaker = Arc::new(Speaker::default());
        let cp = cp.with_bgp(Arc::clone(&speaker) as Arc<dyn BgpService>);
        // Invalid: refused before anything, the validation's message.
        fs::write(
            &config,
            with_bgp.replace("remote_as = 64496", "remote_as = 64496, hold_time_s = 2"),
        )
        .unwrap();
        let r = cp.reload(None, None, false);
        let e = r.error.expect("refused");
        assert!(
            e.message.contains("[bgp]") && e.message.contains("hold_time_s 2"),
            "{e:?}"
        );
        assert_eq!(cp.version(), 2);
        assert!(speaker.0.lock().unwrap().is_empty());
        // The speaker refuses: nothing committed.
        let med = with_bgp.replace(
            "prefix = \"192.0.2.0/24\"",
            "prefix = \"192.0.2.0/24\", med = 666",
        );
        fs::write(&config, &med).unwrap();
        let r = cp.reload(None, None, false);
        assert!(r.error.expect("refused").message.contains("line 7"));
        assert_eq!((cp.version(), speaker.0.lock().unwrap().len()), (2, 1));
        // A new /32 and a MED: checked, applied, named in the diff.
        let more = with_bgp.replace(
            "prefixes = [ { prefix = \"192.0.2.0/24\" } ]",
            "prefixes = [ { prefix = \"192.0.2.0/24\", med = 20 }, { prefix = \"192.0.2.10/32\" } ]",
        );
        fs::write(&config, &more).unwrap();
        let r = cp.reload(None, None, false);
        assert!(r.ok && r.version == 3, "{r:?}");
        assert!(warnings(&r).is_empty());
        let Some(Data::Reloaded { diff, .. }) = &r.data else {
            panic!("{r:?}");
        };
        assert_eq!(diff.bgp.prefixes.added, vec!["192.0.2.10/32"]);
        assert_eq!(diff.bgp.prefixes.changed, vec!["192.0.2.0/24"]);
        assert_eq!(cp.snapshot().spec.bgp.as_ref().unwrap().prefixes.len(), 2);
        // Removed as a whole: accepted, with what happens said.
        fs::write(&config, EXAMPLE).unwrap();
        let r = cp.reload(None, None, false);
        assert!(r.ok && r.version == 4, "{r:?}");
        assert!(warnings(&r)[0].contains("every prefix is withdrawn"));
    }

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
