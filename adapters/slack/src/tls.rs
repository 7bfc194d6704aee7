//! One TLS client configuration for both the Web API and Socket Mode: the ring
//! provider given explicitly (the workspace also links aws-lc-rs, and rustls
//! refuses to guess), Mozilla's roots plus whatever the system trusts.

use rustls::{ClientConfig, RootCertStore};
use std::sync::Arc;

/// Installs ring as the process-wide rustls provider; harmless when one is
/// installed already. Call it first thing in `main` and in test set-up.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client config without ALPN (hyper-rustls adds its own; WebSockets need none).
pub(crate) fn client_config() -> Result<ClientConfig, rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let native = rustls_native_certs::load_native_certs();
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "system CA certificates for Slack");
    Ok(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}
