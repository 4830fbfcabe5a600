//! `update` and `update --check`: replace this executable with the newest
//! release, verified.
//!
//! The release folder (the manifest's `update.url`) holds `SHA256SUMS`, its
//! minisign signature `SHA256SUMS.minisig` and the executables. The signature
//! must verify with the public key embedded at build time; this target's file
//! (`update.file`, with the version) must be listed, newer than this version
//! (unless `--allow-downgrade`/`--force`), and hash as listed. The new file is
//! written beside this one, must pass its own `PYAKET_SELF=check`, then takes
//! this one's place by rename: on Unix over it (a running app keeps the old
//! inode), on Windows by moving the running file aside to `<exe>.old` first
//! (removed by a later update). The old one is kept until the new one has run
//! in place, and put back if it does not. Any refusal leaves this executable
//! as it was, byte for byte.

use std::ffi::OsString;
use std::io::{self, Write};

use anyhow::Result;

use crate::Payload;

macro_rules! errln {
    ($($arg:tt)*) => {{ let _ = writeln!(io::stderr(), $($arg)*); }};
}

#[derive(Debug, Default)]
struct Options {
    check: bool,
    allow_downgrade: bool,
    force: bool,
}

/// Windows: the file a previous update moved aside (`<exe>.old`) could not be
/// deleted while it ran; any later start of an updatable app removes it.
/// (Unix removes it within the update itself.)
#[cfg(windows)]
pub(crate) fn remove_leftover(p: &Payload) {
    if p.update.is_some() {
        if let Ok(exe) = std::env::current_exe() {
            let _ = std::fs::remove_file(old_path(&exe));
        }
    }
}

/// `<exe>.old`: the previous executable while an update replaces it.
#[cfg(any(windows, feature = "update"))]
fn old_path(exe: &std::path::Path) -> std::path::PathBuf {
    let mut name = exe.file_name().map(OsString::from).unwrap_or_default();
    name.push(".old");
    exe.with_file_name(name)
}

pub(crate) const USAGE: &str = "update [--check] [--allow-downgrade] [--force]";

pub(crate) fn run(p: &Payload, args: &[OsString]) -> Result<i32> {
    let mut opts = Options::default();
    for arg in args {
        match arg.to_str() {
            Some("--check") => opts.check = true,
            Some("--allow-downgrade") => opts.allow_downgrade = true,
            Some("--force") => opts.force = true,
            _ => {
                errln!("error: unknown option {arg:?} for update\nusage: {USAGE}");
                return Ok(2);
            }
        }
    }
    let Some(source) = &p.update else {
        errln!(
            "error: {} was built without self-update: its project configures no \
             [tool.hatch.build.hooks.pyaket.update] table (see hatch-pyaket's README, \"Self-update\"); \
             download the new release yourself",
            p.app
        );
        return Ok(1);
    };
    imp::update(p, source, &opts)
}

#[cfg(not(feature = "update"))]
mod imp {
    use super::*;

    pub(super) fn update(p: &Payload, _: &crate::UpdateSource, _: &Options) -> Result<i32> {
        errln!(
            "error: {} has an update table but was compiled without pyaket-core's `update` feature \
             (hatch-pyaket turns it on by itself; a launcher built by hand needs `--features update`)",
            p.app
        );
        Ok(1)
    }
}

#[cfg(feature = "update")]
mod imp {
    use super::*;

    use std::cmp::Ordering;
    use std::fs::{self, File, OpenOptions};
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use anyhow::{bail, Context};
    use sha2::{Digest, Sha256};

    use crate::atomic::{self, tmp_name};
    use crate::http::{Client, Failure};
    use crate::{manage, path_install, release_version, UpdateSource};

    const SUMS: &str = "SHA256SUMS";
    const SIG: &str = "SHA256SUMS.minisig";

    macro_rules! outln {
        ($($arg:tt)*) => {{ let _ = writeln!(io::stdout(), $($arg)*); }};
    }

    /// A refusal: said on stderr, exit 1, nothing changed.
    macro_rules! refuse {
        ($($arg:tt)*) => {{
            errln!("error: {}\n{} was not changed.", format!($($arg)*), current_exe_text());
            return Ok(1);
        }};
    }

    fn current_exe_text() -> String {
        std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "this executable".into())
    }

    pub(super) fn update(p: &Payload, src: &UpdateSource, opts: &Options) -> Result<i32> {
        let exe = std::env::current_exe().context("finding this executable's path")?;
        // The real file, not a symlink to it (`~/.local/bin/app -> ...`).
        let exe = fs::canonicalize(&exe).unwrap_or(exe);
        remove_old(&exe);
        let agent = format!("{}/{} (pyaket launcher)", p.app, p.version);
        let client = Client::new(src.url, &agent)?;
        let sums_url = format!("{}{SUMS}", src.url);
        let sig_url = format!("{}{SIG}", src.url);

        let sums = match client.get_small(&sums_url, 4 << 20) {
            Ok(b) => b,
            Err(Failure::Status(404)) => refuse!(
                "{sums_url} does not exist (HTTP 404): the update URL holds no release; \
                 the publisher uploads SHA256SUMS, SHA256SUMS.minisig and the executables there"
            ),
            Err(e) => refuse!("cannot fetch {sums_url}: {e}; check your connection and try again"),
        };
        let sig = match client.get_small(&sig_url, 64 << 10) {
            Ok(b) => b,
            Err(Failure::Status(404)) => refuse!(
                "the release at {} has no {SIG} (HTTP 404): it was published without signing \
                 SHA256SUMS, so nothing in it can be trusted. The publisher signs it (hatch-pyaket \
                 does when the build has the secret key; README, \"Self-update\")",
                src.url
            ),
            Err(e) => refuse!("cannot fetch {sig_url}: {e}; check your connection and try again"),
        };
        if let Err(why) = verify(src.public_key, &sums, &sig) {
            refuse!("{SIG} at {} {why}", src.url);
        }
        let Ok(sums) = std::str::from_utf8(&sums) else {
            refuse!("{sums_url} is signed but is not text; the publisher uploaded the wrong file");
        };
        let Some(release) = find_release(sums, src.file) else {
            refuse!(
                "the signed {sums_url} lists no {} for this target: the release has no \
                 executable for {}; the publisher builds one for it",
                src.file,
                p.target
            );
        };
        let order = release_version::compare(&release.version, p.version);
        match (order, opts.force, opts.allow_downgrade) {
            (Some(Ordering::Greater), _, _) => {}
            (Some(Ordering::Equal), false, _) => {
                outln!(
                    "{} {} is up to date (the newest release at {})",
                    p.app,
                    p.version,
                    src.url
                );
                return Ok(0);
            }
            (Some(Ordering::Less), false, false) if opts.check => {
                outln!(
                    "{} {} is newer than the release at {} ({}); nothing to update",
                    p.app,
                    p.version,
                    src.url,
                    release.version
                );
                return Ok(0);
            }
            (Some(Ordering::Less), false, false) => refuse!(
                "refusing to downgrade {} from {} to {} (the release at {} is older than this \
                 executable); to install it anyway run {}",
                p.app,
                p.version,
                release.version,
                src.url,
                how_to_run(p, "update --allow-downgrade")
            ),
            (None, false, _) => refuse!(
                "cannot compare the versions {} (here) and {} (release) to tell an upgrade from a \
                 downgrade; to install the release anyway run {}",
                p.version,
                release.version,
                how_to_run(p, "update --force")
            ),
            _ => {}
        }
        if opts.check {
            outln!(
                "update available: {} {} -> {} ({}{})",
                p.app,
                p.version,
                release.version,
                src.url,
                release.name
            );
            return Ok(0);
        }

        let dir = exe
            .parent()
            .context("this executable's path has no parent dir")?;
        let url = format!("{}{}", src.url, release.name);
        errln!("downloading {url} ...");
        let mut temp = TempFile::create(dir, &exe)?;
        let mut hasher = HashingWriter {
            file: temp.file.as_ref().context("temp file is open")?,
            hash: Sha256::new(),
        };
        match client.download(&url, &mut hasher, None) {
            Ok(_) => {}
            Err(Failure::Truncated { got, expected }) => refuse!(
                "the download of {url} stopped after {got} of {expected} bytes (the server closed \
                 the connection); run {} again",
                how_to_run(p, "update")
            ),
            Err(Failure::Status(code)) => refuse!(
                "{url} answered HTTP {code}: the signed SHA256SUMS lists it but the server does \
                 not have it; try again later or tell the publisher"
            ),
            Err(e) => refuse!(
                "cannot download {url}: {e}; run {} again",
                how_to_run(p, "update")
            ),
        }
        let got = crate::payload::hex(&hasher.hash.finalize());
        if got != release.sha256 {
            refuse!(
                "the downloaded {} has sha256 {got}, but the signed SHA256SUMS says {}: the file on \
                 the server is not the one that was signed (changed or damaged); tell the publisher",
                release.name,
                release.sha256
            );
        }
        temp.finish()?;
        errln!("verified {} (sha256 {got})", release.name);

        if let Err(why) = self_check(&temp.path, "check", None) {
            refuse!(
                "the downloaded {} {} failed its self-check: {why}",
                p.app,
                release.version
            );
        }
        replace(&exe, temp, &release.version)?;
        if let Err(e) = path_install::note_replaced(p, &exe, &release.sha256) {
            errln!("warning: could not update the record of installed copies: {e:#}");
        }
        errln!(
            "updated {} from {} to {} ({}); the previous version stays installed until {}",
            p.app,
            p.version,
            release.version,
            exe.display(),
            how_to_run(p, "clean")
        );
        Ok(0)
    }

    fn how_to_run(p: &Payload, command: &str) -> String {
        manage::how_to_run(p, command)
    }

    /// Why `sums` is not signed by `public_key`, in words; Ok when it is.
    fn verify(public_key: &str, sums: &[u8], sig: &[u8]) -> Result<(), String> {
        use minisign_verify::{Error, PublicKey, Signature};
        let key = PublicKey::from_base64(public_key)
            .map_err(|e| format!("cannot be checked: the embedded public key is invalid ({e})"))?;
        let text =
            std::str::from_utf8(sig).map_err(|_| "is not a minisign signature (not text)")?;
        let signature = Signature::decode(text).map_err(|_| {
            "is not a minisign signature (4 lines: comment, base64, trusted comment, base64)"
        })?;
        match key.verify(sums, &signature, false) {
            Ok(()) => Ok(()),
            Err(Error::UnexpectedKeyId) => Err(format!(
                "was made with the key {}, but this executable trusts only the key {}: the \
                 release was signed with another key (a wrong or new key pair), or is not the \
                 publisher's. A publisher who changed keys ships one release signed with the old key first",
                key_id(text.lines().nth(1).unwrap_or("")),
                key_id(public_key)
            )),
            Err(Error::InvalidSignature) => Err("does not match SHA256SUMS: the file was changed after it \
                 was signed (or the signature is another release's); tell the publisher"
                .into()),
            Err(e) => Err(format!("cannot be verified: {e}")),
        }
    }

    /// The key id as minisign prints it (`minisign public key 8D4E...`),
    /// from a base64 key or signature line.
    fn key_id(line: &str) -> String {
        let raw = base64_decode(line.trim()).unwrap_or_default();
        match raw.get(2..10) {
            Some(id) => id.iter().rev().map(|b| format!("{b:02X}")).collect(),
            None => "(unreadable)".into(),
        }
    }

    fn base64_decode(text: &str) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(text.len() / 4 * 3);
        let (mut acc, mut bits) = (0u32, 0u32);
        for c in text.bytes().take_while(|&c| c != b'=') {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                _ => return None,
            };
            acc = (acc << 6) | u32::from(v);
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        Some(out)
    }

    #[derive(Debug, PartialEq)]
    pub(super) struct Release {
        pub name: String,
        pub version: String,
        pub sha256: String,
    }

    /// The newest entry of `sums` (`sha256sum` lines) named like `pattern`
    /// (`<name>-{version}-<target>[.exe]`).
    pub(super) fn find_release(sums: &str, pattern: &str) -> Option<Release> {
        let (prefix, suffix) = pattern.split_once("{version}")?;
        let mut best: Option<Release> = None;
        for line in sums.lines() {
            let Some((sha, name)) = line.split_once(' ') else {
                continue;
            };
            // `sha256sum` writes "  name", or " *name" in binary mode.
            let name = name.trim_start_matches([' ', '*']);
            let Some(version) = name
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(suffix))
            else {
                continue;
            };
            let sha = sha.to_ascii_lowercase();
            if version.is_empty()
                || version.contains(['/', '\\', '-'])
                || sha.len() != 64
                || !sha.bytes().all(|b| b.is_ascii_hexdigit())
            {
                continue;
            }
            let newer = best.as_ref().is_none_or(|b| {
                release_version::compare(version, &b.version) == Some(Ordering::Greater)
            });
            if newer {
                best = Some(Release {
                    name: name.to_string(),
                    version: version.to_string(),
                    sha256: sha,
                });
            }
        }
        best
    }

    struct HashingWriter<'a> {
        file: &'a File,
        hash: Sha256,
    }

    impl Write for HashingWriter<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut file: &File = self.file;
            let n = file.write(buf)?;
            self.hash.update(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            let mut file: &File = self.file;
            file.flush()
        }
    }

    /// The new executable beside the old one; removed on drop unless it took
    /// the old one's place.
    struct TempFile {
        path: PathBuf,
        file: Option<File>,
        keep: bool,
    }

    impl TempFile {
        fn create(dir: &Path, exe: &Path) -> Result<TempFile> {
            // Windows runs only files named .exe.
            let path = dir.join(format!(
                "{}{}",
                tmp_name("update-"),
                std::env::consts::EXE_SUFFIX
            ));
            let mut opts = OpenOptions::new();
            opts.write(true).create_new(true);
            let file = opts.open(&path).with_context(|| {
                format!(
                    "cannot write the new executable beside {} (creating {}): update needs write \
                     access to that dir; run it as the user who owns {}",
                    exe.display(),
                    path.display(),
                    dir.display()
                )
            })?;
            Ok(TempFile {
                path,
                file: Some(file),
                keep: false,
            })
        }

        /// Flushed to disk, closed (Windows runs no file open for writing),
        /// with the old executable's permissions.
        fn finish(&mut self) -> Result<()> {
            if let Some(file) = self.file.take() {
                file.sync_all()
                    .with_context(|| format!("flushing {} to disk", self.path.display()))?;
            }
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&self.path, fs::Permissions::from_mode(0o755))
                    .with_context(|| format!("making {} executable", self.path.display()))?;
            }
            Ok(())
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            drop(self.file.take());
            if !self.keep {
                let _ = fs::remove_file(&self.path);
            }
        }
    }

    /// Runs `exe` with `PYAKET_SELF=<command>`; when `version` is given, its
    /// `info` must report it.
    fn self_check(exe: &Path, command: &str, version: Option<&str>) -> Result<(), String> {
        let out = Command::new(exe)
            .env(manage::SELF_VAR, command)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
            let tail: Vec<&str> = text.lines().rev().take(6).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!("{} ({})", out.status, tail.join(" | ")));
        }
        if let Some(version) = version {
            let reported = stdout
                .lines()
                .find_map(|l| l.strip_prefix("version"))
                .map(str::trim);
            if reported != Some(version) {
                return Err(format!(
                    "it reports version {reported:?}, expected {version}"
                ));
            }
        }
        Ok(())
    }

    /// A previous update's `<exe>.old` (Windows cannot delete a running file,
    /// so the update that made it could not).
    fn remove_old(exe: &Path) {
        let _ = fs::remove_file(old_path(exe));
    }

    /// Puts `new` in `exe`'s place, keeping the old file as `<exe>.old` until
    /// the new one has run there; puts the old one back if it does not.
    fn replace(exe: &Path, mut new: TempFile, version: &str) -> Result<()> {
        let dir = exe.parent().context("no parent dir")?;
        let old = old_path(exe);
        let _ = fs::remove_file(&old);
        // Unix: a second name for the old inode, then rename over. Windows:
        // the running file can be renamed, not replaced or deleted.
        #[cfg(unix)]
        fs::hard_link(exe, &old)
            .or_else(|_| fs::copy(exe, &old).map(|_| ()))
            .with_context(|| format!("keeping a copy of {} as {}", exe.display(), old.display()))?;
        #[cfg(not(unix))]
        fs::rename(exe, &old)
            .with_context(|| format!("moving {} aside to {}", exe.display(), old.display()))?;
        if let Err(e) = fs::rename(&new.path, exe) {
            #[cfg(not(unix))]
            let _ = fs::rename(&old, exe);
            let _ = fs::remove_file(&old);
            return Err(e)
                .with_context(|| format!("renaming {} to {}", new.path.display(), exe.display()));
        }
        new.keep = true;
        let _ = atomic::sync_dir(dir);
        if let Err(why) = self_check(exe, "info", Some(version)) {
            // Back to the old file, by rename: atomic for anyone starting the app meanwhile.
            let rollback = fs::rename(&old, exe);
            let _ = atomic::sync_dir(dir);
            match rollback {
                Ok(()) => bail!(
                    "the new version did not run in place ({why}); the previous {} is back",
                    exe.display()
                ),
                Err(e) => bail!(
                    "the new version did not run in place ({why}), and putting the previous one \
                     back failed ({e}): it is at {}; rename it to {}",
                    old.display(),
                    exe.display()
                ),
            }
        }
        // Windows: the running old file cannot go yet; the next update removes it.
        let _ = fs::remove_file(&old);
        Ok(())
    }
}

#[cfg(all(test, feature = "update"))]
mod tests {
    use super::imp::find_release;

    #[test]
    fn the_newest_listed_release_of_this_target_is_chosen() {
        let a = "a".repeat(64);
        let b = "B".repeat(64);
        let sums = format!(
            "{a}  app-1.2.0-x86_64-unknown-linux-gnu\n\
             {b} *app-1.10.0-x86_64-unknown-linux-gnu\n\
             {a}  app-9.0-aarch64-unknown-linux-gnu\n\
             {a}  app-cli-3.0-x86_64-unknown-linux-gnu\n\
             {a}  app-1.10.0-x86_64-unknown-linux-gnu.cdx.json\n\
             nonsense\n"
        );
        let r = find_release(&sums, "app-{version}-x86_64-unknown-linux-gnu").unwrap();
        assert_eq!(r.version, "1.10.0");
        assert_eq!(r.sha256, "b".repeat(64));
        assert_eq!(r.name, "app-1.10.0-x86_64-unknown-linux-gnu");
        assert!(find_release(&sums, "app-{version}-x86_64-pc-windows-gnu.exe").is_none());
    }
}
