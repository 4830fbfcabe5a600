//! The manifest's two hashes, recomputed from the values the launcher uses.
//!
//! The plugin (hatch_pyaket/payload.py) writes `payload_hash` over the
//! install-identity fields (scripts of one app that differ only in their
//! entry share one install) and `manifest_hash` over every field and file;
//! pyaket-manifest owns which fields each covers and how they are hashed.
//! Recomputing them from the [`Payload`] the launcher runs with catches a
//! flipped byte in any embedded string (entry, python request, vendor, a
//! file's sha256 ...), which the per-frame hashes of the files do not cover.

use anyhow::{bail, Result};

use crate::Payload;

impl Payload {
    /// Fails when an embedded manifest value differs from what the plugin
    /// hashed: a few hundred bytes of strings, cheap enough for every install.
    pub fn check_hashes(&self) -> Result<()> {
        let Err(m) = self.manifest.check_hashes() else {
            return Ok(());
        };
        if m.field == "manifest_hash" {
            bail!(
                "the embedded manifest does not match its manifest_hash (expected {}, got {}): \
                 a value in this executable (entry, python request, vendor, a file's hash ...) was altered; \
                 the executable is corrupted, download it again",
                m.expected,
                m.got
            );
        }
        bail!(
            "the embedded manifest does not match its {} (expected {}, got {}); \
             the executable is corrupted, download it again",
            m.field,
            m.expected,
            m.got
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::{Payload, PayloadFile};
    use pyaket_manifest::{json, Manifest};

    /// Written by payload.py (tests/unit/test_manifest_golden.py checks that
    /// it still writes exactly this).
    pub(crate) const GOLDEN: &str = include_str!("../../manifest/tests/golden-manifest.json");

    /// The golden manifest as the launcher would embed it (files without data).
    pub(crate) fn golden() -> Payload {
        let m: Manifest<'static> = json::parse(GOLDEN).unwrap();
        let files: Vec<PayloadFile> = m
            .files
            .iter()
            .map(|meta| PayloadFile {
                meta: *meta,
                data: &[],
                frames: &[],
            })
            .collect();
        Payload {
            manifest: m.with_files(Box::leak(files.into_boxed_slice())),
        }
    }

    #[test]
    fn golden_manifest_passes_the_check() {
        golden().check_hashes().unwrap();
    }

    #[test]
    fn any_changed_field_fails_the_check() {
        let mut p = golden();
        p.manifest.entry.value = "print('other')";
        let err = p.check_hashes().unwrap_err().to_string();
        assert!(
            err.contains("manifest_hash") && err.contains("corrupted"),
            "{err}"
        );
        let mut p = golden();
        p.manifest.entry.name = "other";
        assert!(p.check_hashes().is_err());
        let mut p = golden();
        p.manifest.gui = false;
        assert!(p.check_hashes().is_err());
        let mut p = golden();
        p.manifest.python_interpreter = Some("python/bin/python3.11");
        assert!(p.check_hashes().is_err());
        // A swapped update key would let another signer replace the app.
        let mut p = golden();
        let update = p
            .manifest
            .update
            .as_mut()
            .expect("the golden manifest has an update table");
        update.public_key = "RWQother";
        assert!(p.check_hashes().is_err());
    }
}
