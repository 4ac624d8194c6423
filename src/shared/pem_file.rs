//! Owns reading the PEM files that TLS settings name (a CA bundle, a client
//! certificate and key), with an error that names the setting: a path that
//! cannot be read, or a file without the expected block, stops the process
//! at start instead of failing every connection later.

/// Why a configured PEM file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{key} `{path}`: {reason}")]
pub struct PemFileError {
    /// The configuration key naming the file, e.g. `redis.tls_ca_file`.
    pub key: &'static str,
    /// The configured path.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// What a PEM file must hold.
#[derive(Debug, Clone, Copy)]
pub enum PemContent {
    /// At least one `CERTIFICATE` block (a CA bundle, a certificate chain).
    Certificates,
    /// A private key (`PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`).
    PrivateKey,
}

/// The text of the PEM file at `path` (set by `key`), checked to hold `content`.
pub fn read(key: &'static str, path: &str, content: PemContent) -> Result<String, PemFileError> {
    let error = |reason: String| PemFileError {
        key,
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let holds = match content {
        PemContent::Certificates => text.contains("-----BEGIN CERTIFICATE-----"),
        PemContent::PrivateKey => text
            .lines()
            .any(|line| line.starts_with("-----BEGIN") && line.ends_with("PRIVATE KEY-----")),
    };
    if holds {
        Ok(text)
    } else {
        Err(error(format!("holds no PEM {content:?} block")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_the_expected_block_is_refused_naming_its_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").expect("write");
        let path = path.display().to_string();
        let error =
            read("redis.tls_ca_file", &path, PemContent::Certificates).expect_err("no certificate");
        assert!(
            error.to_string().starts_with("redis.tls_ca_file `"),
            "{error}"
        );
        assert!(read("x", "/nonexistent/ca.pem", PemContent::Certificates).is_err());
    }
}
