//! Refusing install dirs that another user could write to.
//!
//! The launcher executes what it finds under the install root: the venv's
//! python on every run, the shared uv on a first run. If another user can
//! write to the root (or owns it, or any dir on the way to it), they can plant
//! a venv + marker or a uv of the right size and run code as whoever starts
//! the app. Like ssh (StrictModes) and sudo, every dir from `/` down to the
//! version dir and to the shared uv must be owned by us or by root and not
//! writable by group or others.
//!
//! One exception, for ancestors of the root only: a dir writable by others
//! with the sticky bit (`/tmp`) is fine, because others cannot rename or
//! delete the entries we own in it. The root itself may not be sticky and
//! writable by others: anyone could then create the vendor, app or `.pyaket`
//! dirs in it before us (we would refuse them, but an app whose dirs others
//! can squat is not usable), and a sticky root is always a shared place.
//!
//! The default roots (`~/.local/share`, `XDG_DATA_HOME` of a normal account)
//! pass; the check matters for roots set with PYAKET_INSTALL_DIR or
//! XDG_DATA_HOME. It costs a realpath of the root and one stat per path
//! component on every run (a few microseconds).
//!
//! Windows: not checked. The default root, %LOCALAPPDATA%, is inside the
//! user's profile, whose ACL grants access only to the user, SYSTEM and
//! administrators; a PYAKET_INSTALL_DIR elsewhere is trusted as given
//! (checking ACLs and owners there is not implemented).

use anyhow::Result;

use crate::dirs::Layout;
use crate::Payload;

/// Checks the install root and the app's dirs that exist (the warm path:
/// a realpath and a few stats).
pub(crate) fn check_layout(layout: &Layout) -> Result<()> {
    imp::check_layout(layout)
}

/// Before installing: the payload is intact, the app dir exists with safe
/// permissions (so nobody else can create it or the root first), and the
/// shared uv dirs that exist are ours. Run it under [`private_umask`].
pub(crate) fn check_install(p: &Payload, layout: &Layout) -> Result<()> {
    p.check_hashes()?;
    imp::create_private_dir(&layout.app_dir)?;
    imp::check_layout(layout)?;
    if let (Some(name), None) = (p.uv, crate::dirs::env_nonempty("PYAKET_UV")) {
        let exe = crate::shared_uv::location(&layout.root, p.file(name)?, p.uv_version);
        imp::check_below_root(&layout.root, &exe)?;
    }
    Ok(())
}

/// Runs `f` with group and other write removed from the umask, so that the
/// dirs and files created by the launcher and by uv (which inherits it) are
/// not writable by others, whatever the user's umask (002 is common). The
/// old umask is restored afterwards: the app itself runs with the user's.
pub(crate) fn private_umask<T>(f: impl FnOnce() -> T) -> T {
    let old = imp::umask_add(0o022);
    let result = f();
    imp::umask_restore(old);
    result
}

/// The fix to suggest: which setting chose the root.
#[cfg_attr(not(unix), allow(dead_code))]
fn root_setting() -> &'static str {
    let from_xdg = crate::dirs::env_nonempty("PYAKET_INSTALL_DIR").is_none()
        && crate::dirs::env_nonempty("XDG_DATA_HOME").is_some();
    if from_xdg {
        "set XDG_DATA_HOME (or PYAKET_INSTALL_DIR) to a directory only you can write to"
    } else {
        "set PYAKET_INSTALL_DIR to a directory only you can write to"
    }
}

#[cfg(unix)]
mod imp {
    use std::fs::{self, DirBuilder, Metadata};
    use std::io;
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    use std::path::{Path, PathBuf};

    use anyhow::{bail, Context, Result};

    use super::root_setting;
    use crate::dirs::Layout;

    /// What a dir is to us: ancestors of the root may be sticky shared dirs.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Role {
        AboveRoot,
        Root,
        BelowRoot,
    }

    fn euid() -> u32 {
        use std::sync::OnceLock;
        static EUID: OnceLock<u32> = OnceLock::new();
        // SAFETY: geteuid has no preconditions and cannot fail.
        *EUID.get_or_init(|| unsafe { libc::geteuid() })
    }

    pub(super) fn umask_add(bits: libc::mode_t) -> libc::mode_t {
        // SAFETY: umask has no preconditions and cannot fail; it only
        // returns the previous mask, which we set back in umask_restore.
        unsafe {
            let old = libc::umask(0o077);
            libc::umask(old | bits);
            old
        }
    }

    pub(super) fn umask_restore(old: libc::mode_t) {
        // SAFETY: as above.
        unsafe {
            libc::umask(old);
        }
    }

    /// `mkdir -p` with 0755 (the umask can only take bits away).
    pub(super) fn create_private_dir(dir: &Path) -> Result<()> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))
    }

    fn check(path: &Path, meta: &Metadata, role: Role) -> Result<()> {
        let (uid, mode, me) = (meta.uid(), meta.mode() & 0o7777, euid());
        let what = match role {
            Role::AboveRoot => "a parent directory of the install root",
            Role::Root => "the install root",
            Role::BelowRoot => "the install directory",
        };
        let path_text = path.display();
        if uid != me && uid != 0 {
            bail!(
                "refusing to use {what} {path_text}: it is owned by another user (uid {uid}, mode \
                 {mode:04o}; you are uid {me}), who could make this program run their code. \
                 Fix: {}, or have it owned by you (`chown {me} {path_text}` as root)",
                root_setting()
            );
        }
        let sticky_ok = role == Role::AboveRoot && mode & 0o1000 != 0;
        if mode & 0o022 != 0 && !sticky_ok {
            let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
                (true, true) => "its group and all other users",
                (true, false) => "its group",
                _ => "all other users",
            };
            bail!(
                "refusing to use {what} {path_text}: it is writable by {who} (mode {mode:04o}, \
                 owner uid {uid}), who could make this program run their code. \
                 Fix: `chmod go-w {path_text}`, or {}",
                root_setting()
            );
        }
        Ok(())
    }

    /// `dir` and every ancestor up to `/`, resolving symlinks first (a
    /// symlink's own mode means nothing; who can replace it and its target
    /// matters). `dir` must exist.
    fn check_chain(dir: &Path, role: Role) -> Result<()> {
        let real = fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
        let mut current = PathBuf::new();
        let components: Vec<_> = real.components().collect();
        for (i, component) in components.iter().enumerate() {
            current.push(component);
            let meta =
                fs::metadata(&current).with_context(|| format!("reading {}", current.display()))?;
            let this_role = if i + 1 == components.len() {
                role
            } else {
                Role::AboveRoot
            };
            check(&current, &meta, this_role)?;
        }
        Ok(())
    }

    /// The root (or, before it exists, its nearest existing ancestor).
    fn check_root(root: &Path) -> Result<()> {
        let mut role = Role::Root;
        let mut dir = root;
        loop {
            match fs::symlink_metadata(dir) {
                Ok(_) => return check_chain(dir, role),
                Err(e) if e.kind() == io::ErrorKind::NotFound => match dir.parent() {
                    Some(parent) => {
                        // Not created yet: created with 0755 by us. Its parent
                        // only needs to be safe as a parent.
                        dir = parent;
                        role = Role::AboveRoot;
                    }
                    None => return Ok(()),
                },
                Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
            }
        }
    }

    /// Each existing dir (or file) from below `root` down to `path`; a
    /// symlink is checked through its target's whole chain.
    pub(super) fn check_below_root(root: &Path, path: &Path) -> Result<()> {
        let Ok(rest) = path.strip_prefix(root) else {
            return check_chain(path, Role::BelowRoot);
        };
        let mut current = root.to_path_buf();
        for component in rest.components() {
            current.push(component);
            match fs::symlink_metadata(&current) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    check_chain(&current, Role::BelowRoot)?
                }
                Ok(meta) => check(&current, &meta, Role::BelowRoot)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e).with_context(|| format!("reading {}", current.display())),
            }
        }
        Ok(())
    }

    pub(super) fn check_layout(layout: &Layout) -> Result<()> {
        check_root(&layout.root)?;
        check_below_root(&layout.root, &layout.version_dir)
    }
}

#[cfg(not(unix))]
mod imp {
    use std::path::Path;

    use anyhow::{Context, Result};

    use crate::dirs::Layout;

    /// No umask: new files get the ACL inherited from their parent dir.
    pub(super) fn umask_add(_bits: u32) -> u32 {
        0
    }

    pub(super) fn umask_restore(_old: u32) {}

    pub(super) fn create_private_dir(dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
    }

    pub(super) fn check_layout(_layout: &Layout) -> Result<()> {
        Ok(())
    }

    pub(super) fn check_below_root(_root: &Path, _path: &Path) -> Result<()> {
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use super::imp;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pyaket-secure-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    #[test]
    fn writable_dirs_below_the_root_are_refused_and_named() {
        let root = scratch("below");
        let app = root.join("vendor").join("app");
        imp::create_private_dir(&app).unwrap();
        imp::check_below_root(&root, &app.join("1.0-abc")).unwrap();
        for mode in [0o775, 0o757, 0o1777] {
            fs::set_permissions(&app, fs::Permissions::from_mode(mode)).unwrap();
            let err = imp::check_below_root(&root, &app.join("1.0-abc")).unwrap_err();
            let text = format!("{err:#}");
            assert!(text.contains(&app.display().to_string()), "{text}");
            assert!(
                text.contains(&format!("chmod go-w {}", app.display())),
                "{text}"
            );
            assert!(text.contains(&format!("mode {mode:04o}")), "{text}");
        }
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn dirs_are_created_without_group_or_other_write_whatever_the_umask() {
        let root = scratch("umask");
        let old = imp::umask_add(0);
        // SAFETY: test-only; restores the mask right after.
        unsafe { libc::umask(0o000) };
        super::private_umask(|| imp::create_private_dir(&root.join("a").join("b")).unwrap());
        imp::umask_restore(old);
        for dir in [root.join("a"), root.join("a").join("b")] {
            let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o755, "{}", dir.display());
        }
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn sticky_shared_dirs_are_fine_above_the_root_only() {
        let shared = scratch("sticky");
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        let layout = |root: PathBuf| crate::dirs::Layout {
            app_dir: root.join("v").join("a"),
            version_dir: root.join("v").join("a").join("1-x"),
            root,
        };
        // Below a sticky dir: fine, existing or not.
        imp::check_layout(&layout(shared.join("root"))).unwrap();
        fs::create_dir(shared.join("root")).unwrap();
        fs::set_permissions(shared.join("root"), fs::Permissions::from_mode(0o755)).unwrap();
        imp::check_layout(&layout(shared.join("root"))).unwrap();
        // The sticky dir itself as the root: refused.
        let err = imp::check_layout(&layout(shared.clone())).unwrap_err();
        assert!(format!("{err:#}").contains("the install root"), "{err:#}");
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o755)).unwrap();
        fs::remove_dir_all(&shared).unwrap();
    }
}
