//! HTTPS downloads for `update` (ureq with rustls and the webpki root
//! certificates, so no system TLS library is needed on any target).
//!
//! Only in builds with the `update` feature: projects without self-update
//! do not pay for a TLS stack in size or build time.

use std::io::{self, Read, Write};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Fetches over https; plain http only when the release folder itself is
/// on a loopback address (tests), so no redirect can downgrade to http.
pub(crate) struct Client {
    agent: ureq::Agent,
}

/// What went wrong with a download, for messages that say what to do.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The server answered with this status (404: no such file in the release).
    Status(u16),
    /// The body stopped before Content-Length bytes: the connection dropped.
    Truncated {
        got: u64,
        expected: u64,
    },
    Other(anyhow::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Status(code) => write!(f, "the server answered HTTP {code}"),
            Failure::Truncated { got, expected } => write!(
                f,
                "the download stopped after {got} of {expected} bytes (the connection was closed)"
            ),
            Failure::Other(e) => write!(f, "{e:#}"),
        }
    }
}

pub(crate) fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or("");
    // `[::1]:8080`, `127.0.0.1:8080`, `localhost`
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Client {
    pub(crate) fn new(base_url: &str, user_agent: &str) -> Result<Client> {
        let loopback = is_loopback_http(base_url);
        if !base_url.starts_with("https://") && !loopback {
            bail!(
                "the update URL {base_url} is not https:// (plain http is accepted only for \
                 loopback addresses); the executable was built with a bad update table"
            );
        }
        let config = ureq::Agent::config_builder()
            .https_only(!loopback)
            .user_agent(user_agent)
            // Failures become ours (Failure::Status), with the URL in the message.
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            // A stalled body fails instead of hanging an update forever.
            .timeout_per_read(Some(Duration::from_secs(60)))
            .max_redirects(10)
            .build();
        Ok(Client {
            agent: ureq::Agent::new_with_config(config),
        })
    }

    /// A small file (SHA256SUMS, a signature), at most `limit` bytes.
    pub(crate) fn get_small(&self, url: &str, limit: u64) -> Result<Vec<u8>, Failure> {
        let mut out = Vec::new();
        self.download(url, &mut out, Some(limit))?;
        Ok(out)
    }

    /// Streams `url` into `sink`; returns the byte count. A body shorter than
    /// its Content-Length is [`Failure::Truncated`], whatever the TLS or HTTP
    /// layer says about it.
    pub(crate) fn download(
        &self,
        url: &str,
        sink: &mut dyn Write,
        limit: Option<u64>,
    ) -> Result<u64, Failure> {
        let mut response = self
            .agent
            .get(url)
            .call()
            .map_err(|e| Failure::Other(anyhow::Error::new(e).context(format!("GET {url}"))))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(Failure::Status(status));
        }
        let expected = response.body().content_length();
        if let (Some(expected), Some(limit)) = (expected, limit) {
            if expected > limit {
                return Err(Failure::Other(anyhow::anyhow!(
                    "{url} is {expected} bytes, more than the {limit} expected of this file"
                )));
            }
        }
        let mut reader = response
            .body_mut()
            .with_config()
            .limit(limit.unwrap_or(u64::MAX))
            .reader();
        let mut buf = vec![0u8; 256 << 10];
        let mut got = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // ureq reports a body cut short as an I/O error; say what it means.
                    if let Some(expected) = expected.filter(|&x| got < x) {
                        return Err(Failure::Truncated { got, expected });
                    }
                    return Err(Failure::Other(
                        anyhow::Error::new(e).context(format!("reading {url}")),
                    ));
                }
            };
            sink.write_all(&buf[..n])
                .context("writing the download")
                .map_err(Failure::Other)?;
            got += n as u64;
        }
        if let Some(expected) = expected.filter(|&x| got != x) {
            return Err(Failure::Truncated { got, expected });
        }
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_may_use_http() {
        for url in [
            "http://127.0.0.1:8000/rel/",
            "http://127.1.2.3/x/",
            "http://[::1]:9/",
            "http://localhost:80/",
            "http://localhost/",
        ] {
            assert!(is_loopback_http(url), "{url}");
        }
        for url in [
            "https://127.0.0.1/",
            "http://example.com/",
            "http://127.0.0.1.example.com/",
            "http://10.0.0.1:8000/",
            "ftp://127.0.0.1/",
        ] {
            assert!(!is_loopback_http(url), "{url}");
        }
        assert!(Client::new("http://example.com/", "t").is_err());
        assert!(Client::new("https://example.com/", "t").is_ok());
    }
}
