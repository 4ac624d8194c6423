//! Owns TLS to PostgreSQL. When `postgres.tls_ca_file` names a CA bundle,
//! every connection the nodes and migrations open is encrypted and the
//! server's certificate is verified against that bundle, host name included
//! (what libpq calls `sslmode=verify-full`); a server without TLS, or with a
//! certificate the bundle does not vouch for, is refused. Without it,
//! connections are plain (a laptop, a private network).

use std::sync::Arc;

use diesel::ConnectionError;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::PostgresConfig;

/// Why TLS to PostgreSQL could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The CA bundle could not be read or holds no certificate.
    #[error("postgres.tls_ca_file `{path}`: {reason}")]
    CaFile {
        /// The configured path.
        path: String,
        /// What was wrong with it.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The TLS connector for `postgres`, or `None` for plain connections.
pub fn connector(postgres: &PostgresConfig) -> Result<Option<MakeRustlsConnect>, TlsSetupError> {
    if postgres.tls_ca_file.is_empty() {
        return Ok(None);
    }
    let ca_error = |reason: String| TlsSetupError::CaFile {
        path: postgres.tls_ca_file.clone(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(&postgres.tls_ca_file)
        .map_err(|error| ca_error(error.to_string()))?;
    for certificate in certificates {
        roots
            .add(certificate.map_err(|error| ca_error(error.to_string()))?)
            .map_err(|error| ca_error(error.to_string()))?;
    }
    if roots.is_empty() {
        return Err(ca_error("no certificate in the file".into()));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Some(MakeRustlsConnect::new(config)))
}

/// Opens one connection to `url`, over `tls` when given.
pub async fn connect(
    url: &str,
    tls: Option<&MakeRustlsConnect>,
) -> Result<AsyncPgConnection, ConnectionError> {
    let Some(tls) = tls else {
        return AsyncPgConnection::establish(url).await;
    };
    let mut config: tokio_postgres::Config =
        url.parse().map_err(|error: tokio_postgres::Error| {
            ConnectionError::InvalidConnectionUrl(error.to_string())
        })?;
    config.ssl_mode(SslMode::Require);
    let (client, connection) = config
        .connect(tls.clone())
        .await
        .map_err(|error| ConnectionError::BadConnection(with_causes(&error)))?;
    AsyncPgConnection::try_from_client_and_connection(client, connection).await
}

/// `error` and every cause under it: a TLS failure says why only in its
/// source ("invalid peer certificate: UnknownIssuer").
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}
