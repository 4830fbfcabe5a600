//! Where install progress and uv's output go: the console (stderr), or the
//! app's install.log for GUI apps, which have no console on Windows.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::process::Stdio;

use anyhow::{Context, Result};

use crate::dirs::Layout;
use crate::Payload;

/// Where install progress and uv's output go: the console, or the app's
/// install.log for GUI apps (which have no console on Windows).
pub(crate) struct Out {
    log: Option<File>,
}

impl Out {
    pub fn new(p: &Payload, layout: &Layout) -> Result<Out> {
        let log = if p.gui { Some(open_log(layout)?) } else { None };
        Ok(Out { log })
    }

    pub(crate) fn is_console(&self) -> bool {
        self.log.is_none()
    }

    /// Stdio for uv: never our stdout, which may be piped into another
    /// program expecting only the app's output.
    pub(crate) fn stdio(&self) -> Result<Stdio> {
        Ok(match &self.log {
            Some(f) => Stdio::from(f.try_clone().context("duplicating the log file handle")?),
            None => Stdio::from(io::stderr()),
        })
    }
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.log {
            Some(f) => f.write(buf),
            None => io::stderr().write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.log {
            Some(f) => f.flush(),
            None => io::stderr().flush(),
        }
    }
}

pub(crate) fn open_log(layout: &Layout) -> Result<File> {
    fs::create_dir_all(&layout.app_dir)
        .with_context(|| format!("creating {}", layout.app_dir.display()))?;
    let path = layout.log_file();
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
}
