//! Logging in so that a restart is the same device: the session (user, device
//! id, access token) is kept in `store_dir/session.json` beside the SQLite
//! crypto store that holds that device's keys.

use crate::error::{MatrixError, Retry, classify, is_unknown_token};
use crate::settings::Settings;
use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::config::RequestConfig;
use matrix_sdk::ruma::{OwnedDeviceId, OwnedUserId};
use matrix_sdk::{Client, SessionMeta, SessionTokens};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Files the SDK keeps in the store folder; removed when the device changes,
/// since their keys belong to the old device.
const SDK_STORE_FILES: &[&str] = &[
    "matrix-sdk-state.sqlite3",
    "matrix-sdk-crypto.sqlite3",
    "matrix-sdk-event-cache.sqlite3",
    "matrix-sdk-media.sqlite3",
];

#[derive(Serialize, Deserialize)]
struct Stored {
    homeserver: String,
    user_id: OwnedUserId,
    device_id: OwnedDeviceId,
    access_token: String,
}

fn session_path(dir: &Path) -> PathBuf {
    dir.join("session.json")
}

fn read_stored(dir: &Path) -> Option<Stored> {
    let bytes = std::fs::read(session_path(dir)).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "ignoring an unreadable Matrix session file");
            None
        }
    }
}

fn write_stored(dir: &Path, s: &Stored) -> Result<(), MatrixError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = session_path(dir);
    let tmp = path.with_extension("json.tmp");
    let store_err = |source| MatrixError::Store {
        path: path.clone(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(store_err)?;
    let json = serde_json::to_vec_pretty(s).map_err(|e| store_err(std::io::Error::other(e)))?;
    f.write_all(&json).map_err(store_err)?;
    f.sync_all().map_err(store_err)?;
    std::fs::rename(&tmp, &path).map_err(store_err)
}

/// `{"user_id", "device_id"}` for an access token, asked before the client is
/// built (the client's stores must match the device).
async fn whoami(
    homeserver: &str,
    token: &str,
) -> Result<(OwnedUserId, Option<OwnedDeviceId>), MatrixError> {
    #[derive(Deserialize)]
    struct WhoAmI {
        user_id: OwnedUserId,
        device_id: Option<OwnedDeviceId>,
    }
    let url = format!(
        "{}/_matrix/client/v3/account/whoami",
        homeserver.trim_end_matches('/')
    );
    let http = matrix_sdk::reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| MatrixError::Settings(format!("HTTP client: {e}")))?;
    let resp = http
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| MatrixError::Settings(format!("asking {url} who the access token is: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        return Err(MatrixError::Settings(format!(
            "the homeserver refused the access token ({status}): {body}"
        )));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| MatrixError::Settings(format!("reading {url}: {e}")))?;
    let who: WhoAmI = serde_json::from_slice(&body)
        .map_err(|e| MatrixError::Settings(format!("reading {url}: {e}")))?;
    Ok((who.user_id, who.device_id))
}

/// Builds the client on the SQLite stores in `store_dir` and logs it in as the
/// device recorded there (or a new one on the very first start).
pub(crate) async fn connect_client(settings: &Settings) -> Result<Client, MatrixError> {
    let dir = &settings.store_dir;
    let user_id = OwnedUserId::try_from(settings.user_id.as_str())
        .map_err(|e| MatrixError::Settings(format!("user_id `{}`: {e}", settings.user_id)))?;
    let mut stored =
        read_stored(dir).filter(|s| s.user_id == user_id && s.homeserver == settings.homeserver);

    // With a configured token, its device decides; a store made for another
    // device cannot be used with it.
    let mut token_device = None;
    let known = stored
        .as_ref()
        .filter(|s| Some(&s.access_token) == settings.access_token.as_ref())
        .map(|s| s.device_id.clone());
    if let Some(device) = known {
        // The same token as last time: its device is known, and a restart works
        // while the homeserver is away (the sync loop waits for it).
        token_device = Some(device);
    } else if let Some(token) = &settings.access_token {
        let (actual, device) = whoami(&settings.homeserver, token).await?;
        if actual != user_id {
            return Err(MatrixError::WrongUser {
                expected: user_id.to_string(),
                actual: actual.to_string(),
            });
        }
        let device = device.ok_or_else(|| {
            MatrixError::Settings(
                "the access token has no device; log in once to get one that has".into(),
            )
        })?;
        if stored.as_ref().is_some_and(|s| s.device_id != device) {
            tracing::warn!(%device, "the access token is for another device than the store's; starting a fresh store");
            stored = None;
            wipe_sdk_stores(dir)?;
        }
        token_device = Some(device);
    } else if stored.is_none() && settings.password.is_none() {
        return Err(MatrixError::Settings(
            "needs an access_token or a password".into(),
        ));
    }

    let client = build(settings).await?;

    let login_err = |source: matrix_sdk::Error| MatrixError::Login {
        homeserver: settings.homeserver.clone(),
        user_id: settings.user_id.clone(),
        source: Box::new(source),
    };
    let session = |device_id: OwnedDeviceId, access_token: String| MatrixSession {
        meta: SessionMeta {
            user_id: user_id.clone(),
            device_id,
        },
        tokens: SessionTokens {
            access_token,
            refresh_token: None,
        },
    };

    if let (Some(token), Some(device)) = (&settings.access_token, token_device) {
        client
            .restore_session(session(device.clone(), token.clone()))
            .await
            .map_err(login_err)?;
        save(settings, device, token.clone())?;
        return Ok(client);
    }

    let password = settings.password.as_deref();
    if let Some(s) = stored {
        client
            .restore_session(session(s.device_id.clone(), s.access_token.clone()))
            .await
            .map_err(login_err)?;
        let revoked = match client.whoami().await {
            Ok(_) => return Ok(client),
            Err(e) => matrix_sdk::Error::Http(Box::new(e)),
        };
        if let Retry::Transient(_) = classify(&revoked) {
            // The homeserver is away, not refusing us: go on with the stored
            // session; the sync loop waits for it to come back.
            tracing::warn!(error = %revoked, "could not check the stored Matrix session; using it");
            return Ok(client);
        }
        let Some(password) = password.filter(|_| is_unknown_token(&revoked)) else {
            return Err(login_err(revoked));
        };
        // The token was revoked: log in again as the same device, so its keys
        // (in the crypto store) stay valid. A client cannot log in once a
        // session was restored into it, so a fresh one is built on the stores.
        tracing::info!(device = %s.device_id, "stored Matrix session was revoked; logging in again");
        drop(client);
        let client = build(settings).await?;
        let resp = client
            .matrix_auth()
            .login_username(&user_id, password)
            .device_id(s.device_id.as_str())
            .send()
            .await
            .map_err(login_err)?;
        save(settings, resp.device_id, resp.access_token)?;
        return Ok(client);
    }

    let password = password
        .ok_or_else(|| MatrixError::Settings("needs an access_token or a password".into()))?;
    let resp = client
        .matrix_auth()
        .login_username(&user_id, password)
        .initial_device_display_name("ExecGov")
        .send()
        .await
        .map_err(login_err)?;
    tracing::info!(device = %resp.device_id, "logged in to Matrix as a new device");
    save(settings, resp.device_id, resp.access_token)?;
    Ok(client)
}

/// A client on the SQLite stores in `store_dir`, not logged in yet.
async fn build(settings: &Settings) -> Result<Client, MatrixError> {
    Client::builder()
        .homeserver_url(&settings.homeserver)
        .sqlite_store(&settings.store_dir, None)
        // A few quick retries; longer outages are the sync loop's and the
        // notifier's business (doubling, capped waits).
        .request_config(
            RequestConfig::new()
                .retry_limit(2)
                .timeout(Duration::from_secs(30)),
        )
        .build()
        .await
        .map_err(|source| MatrixError::Build {
            homeserver: settings.homeserver.clone(),
            source: Box::new(source),
        })
}

fn save(
    settings: &Settings,
    device_id: OwnedDeviceId,
    access_token: String,
) -> Result<(), MatrixError> {
    let user_id = OwnedUserId::try_from(settings.user_id.as_str())
        .map_err(|e| MatrixError::Settings(format!("user_id: {e}")))?;
    write_stored(
        &settings.store_dir,
        &Stored {
            homeserver: settings.homeserver.clone(),
            user_id,
            device_id,
            access_token,
        },
    )
}

fn wipe_sdk_stores(dir: &Path) -> Result<(), MatrixError> {
    for name in SDK_STORE_FILES {
        for suffix in ["", "-wal", "-shm"] {
            let path = dir.join(format!("{name}{suffix}"));
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(MatrixError::Store { path, source }),
            }
        }
    }
    Ok(())
}
