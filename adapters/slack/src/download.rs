//! Files people attach to a message that asks for a run: the event's `files`
//! entries, downloaded from their `url_private_download` with the bot token
//! (Slack serves them to a token with `files:read` only), for the core to
//! bind to the script's file parameters.

use crate::Slack;
use execgov_chat::Attachment;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use serde::Deserialize;

/// The most ExecGov takes per file (a manifest's `max_size` is at most this).
pub(crate) const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// An event's `files` entry, as far as the adapter reads it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct SharedFile {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) size: u64,
    #[serde(default)]
    pub(crate) url_private_download: Option<String>,
    #[serde(default)]
    pub(crate) url_private: Option<String>,
}

impl Slack {
    /// Downloads every file, or says which one could not be had and why.
    pub(crate) async fn download_all(
        &self,
        files: &[SharedFile],
    ) -> Result<Vec<Attachment>, String> {
        let mut out = Vec::with_capacity(files.len());
        for f in files {
            if f.size > MAX_FILE_BYTES {
                return Err(format!(
                    "`{}` is {} MiB; ExecGov takes files of at most {} MiB",
                    f.name,
                    f.size / (1024 * 1024),
                    MAX_FILE_BYTES / (1024 * 1024)
                ));
            }
            let url = f
                .url_private_download
                .as_deref()
                .or(f.url_private.as_deref())
                .ok_or_else(|| format!("Slack gave no download address for `{}`", f.name))?;
            let data = self.fetch(url).await.map_err(|why| {
                format!(
                    "could not fetch `{}` from Slack ({why}); try attaching it again",
                    f.name
                )
            })?;
            out.push(Attachment {
                name: f.name.clone(),
                data,
            });
        }
        Ok(out)
    }

    /// GET with the bot token, to Slack's https addresses (or the configured
    /// API host, as tests' fake Slack is), reading at most [`MAX_FILE_BYTES`].
    async fn fetch(&self, url: &str) -> Result<Vec<u8>, String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("bad address: {e}"))?;
        let api_host = self
            .api_base
            .parse::<hyper::Uri>()
            .ok()
            .and_then(|u| u.host().map(str::to_string));
        let trusted =
            uri.scheme_str() == Some("https") || uri.host().map(str::to_string) == api_host;
        if !trusted {
            return Err("not an https address of Slack's".into());
        }
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*self.ws_tls).clone())
            .https_or_http()
            .enable_http1()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build::<_, Empty<Bytes>>(https);
        let req = hyper::Request::get(uri)
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", self.api.bot_token.token_value.0),
            )
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let res = tokio::time::timeout(std::time::Duration::from_secs(120), client.request(req))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        if !res.status().is_success() {
            return Err(format!("HTTP {}", res.status()));
        }
        let body = Limited::new(res.into_body(), MAX_FILE_BYTES as usize)
            .collect()
            .await
            .map_err(|e| format!("reading it: {e}"))?;
        Ok(body.to_bytes().to_vec())
    }
}
