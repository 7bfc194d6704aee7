//! Posts each signed checkpoint of the audit chain to `[audit] channel`: the
//! ones `serve` signs every `checkpoint_every` and the ones `execgov audit
//! checkpoint` signs, as they appear in the checkpoint file. A channel that
//! keeps them is a witness outside the host: each message carries the
//! checkpoint's JSON line, which `execgov audit verify --checkpoints` reads.
//!
//! What each place has been shown is kept beside the file
//! (`<checkpoint_file>.posted`: for each place, how many lines of the file it
//! has), so a restart neither repeats nor skips one, and a platform that is
//! down gets the lines it missed at a later look. A line whose signature does
//! not hold under this server's key is not posted (and is logged).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use execgov_chat::{ChatAdapter, Message, Outbound};
use tokio_util::sync::CancellationToken;

use super::notifier::parse_place;
use crate::audit::checkpoints::SignedCheckpoint;
use crate::audit::keys::{public_key_token, signing_key};
use crate::engine::Engine;
use crate::types::Place;

/// How often the checkpoint file is looked at.
const LOOK_EVERY: Duration = Duration::from_secs(2);
/// Checkpoints posted to one place in one look, at most (a backlog is posted
/// over several looks rather than all at once).
const BATCH: usize = 10;

/// Posts new checkpoints until `shutdown`; returns at once when `[audit]
/// channel` is not set.
pub async fn post_checkpoints_until_stopped(
    engine: Arc<Engine>,
    adapters: Vec<Arc<dyn ChatAdapter>>,
    shutdown: CancellationToken,
) {
    let config = engine.config().clone();
    let Some(channel) = config.audit.channel.clone() else {
        return;
    };
    let key = match signing_key(&config) {
        Ok(key) => key.verifying_key(),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "checkpoints are not posted: the signing key is unusable");
            return;
        }
    };
    let places: Vec<Place> = config
        .channels
        .get(&channel)
        .into_iter()
        .flatten()
        .filter_map(|key| parse_place(key))
        .collect();
    let file = config.checkpoint_file();
    let poster = Poster {
        adapters,
        places,
        key,
        posted_file: posted_file(&file),
        file,
    };
    let mut tick = tokio::time::interval(LOOK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        poster.look().await;
    }
}

struct Poster {
    adapters: Vec<Arc<dyn ChatAdapter>>,
    places: Vec<Place>,
    key: VerifyingKey,
    file: PathBuf,
    posted_file: PathBuf,
}

impl Poster {
    /// Posts to each place the lines it has not had yet, up to [`BATCH`].
    async fn look(&self) {
        let Ok(text) = std::fs::read_to_string(&self.file) else {
            return; // No checkpoint yet.
        };
        let lines: Vec<&str> = text.lines().collect();
        let mut posted = read_posted(&self.posted_file);
        let before = posted.clone();
        for place in &self.places {
            let Some(adapter) = self
                .adapters
                .iter()
                .find(|a| a.platform() == place.platform)
            else {
                continue;
            };
            let done = posted.entry(place.key()).or_insert(0);
            for (n, line) in lines.iter().enumerate().skip(*done).take(BATCH) {
                if let Some(text) = self.message(n + 1, line) {
                    let out = Outbound {
                        place: place.clone(),
                        message: Message::Text { text },
                        only_to: None,
                    };
                    if let Err(e) = adapter.post(&out).await {
                        tracing::warn!(place = %place.key(), error = %e, "posting a checkpoint failed; trying again at the next look");
                        break;
                    }
                }
                *done = n + 1;
            }
        }
        if posted != before
            && let Err(e) = write_posted(&self.posted_file, &posted)
        {
            tracing::warn!(file = %self.posted_file.display(), error = %e, "could not record which checkpoints were posted");
        }
    }

    /// The message for line `n` of the file; `None` for a line that is not a
    /// checkpoint signed by this server's key.
    fn message(&self, n: usize, line: &str) -> Option<String> {
        let checked = serde_json::from_str::<SignedCheckpoint>(line)
            .map_err(|e| e.to_string())
            .and_then(|c| c.verify(&self.key).map(|()| c));
        match checked {
            Ok(c) => {
                let key = public_key_token(&self.key);
                Some(format!(
                    "Audit checkpoint: entry {} is the chain's newest, hash {}, signed by {key}. \
                     Keep this line; `execgov audit verify --checkpoints FILE --key {key}` \
                     checks the chain against it:\n{line}",
                    c.seq, c.hash,
                ))
            }
            Err(why) => {
                tracing::error!(file = %self.file.display(), line = n, %why, "not posting a checkpoint line that does not verify");
                None
            }
        }
    }
}

fn posted_file(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".posted");
    file.with_file_name(name)
}

fn read_posted(path: &Path) -> BTreeMap<String, usize> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Written to a temporary file and renamed, so a crash leaves the old record or the new.
fn write_posted(path: &Path, posted: &BTreeMap<String, usize>) -> std::io::Result<()> {
    let tmp = path.with_extension("posted.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec(posted).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_was_posted_is_kept_beside_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let record = posted_file(&dir.path().join("checkpoints.jsonl"));
        assert_eq!(record, dir.path().join("checkpoints.jsonl.posted"));
        assert!(read_posted(&record).is_empty(), "nothing posted yet");
        let posted = BTreeMap::from([("slack:CAUDIT".to_string(), 3)]);
        write_posted(&record, &posted).unwrap();
        assert_eq!(read_posted(&record), posted);
    }
}
