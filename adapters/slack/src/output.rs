//! The output port: the core's messages posted and edited in Slack.

use crate::Slack;
use crate::api::Post;
use crate::blocks::{self, Rendered, escape};
use crate::error::ApiError;
use crate::upload::{MAX_UPLOAD_BYTES, Upload};
use execgov_chat::{
    ChatAdapter, ChatError, Message, MessageRef, Outbound, OutboundFile, Place, Platform, RunView,
};

#[async_trait::async_trait]
impl ChatAdapter for Slack {
    fn platform(&self) -> Platform {
        Platform::Slack
    }

    /// `chat.postMessage` (or `chat.postEphemeral` for `only_to`) in
    /// `place.thread` when set; a run's result brings its files along.
    async fn post(&self, msg: &Outbound) -> Result<MessageRef, ChatError> {
        let run_id = blocks::run_id_of(&msg.message).unwrap_or("-");
        self.post_outbound(msg).await.map_err(|e| {
            tracing::warn!(run_id, channel = %msg.place.channel, error = %e, "posting to Slack failed");
            e.into()
        })
    }

    /// `chat.update` with the same rendering as [`post`](Self::post).
    async fn edit(&self, target: &MessageRef, msg: &Outbound) -> Result<(), ChatError> {
        let run_id = blocks::run_id_of(&msg.message).unwrap_or("-");
        let r = blocks::render(&msg.message);
        self.api
            .update(&target.place.channel, &target.id, &r.text, r.blocks.as_deref())
            .await
            .map_err(|e| {
                tracing::warn!(run_id, channel = %target.place.channel, error = %e, "editing a Slack message failed");
                e.into()
            })
    }
}

impl Slack {
    async fn post_outbound(&self, msg: &Outbound) -> Result<MessageRef, ApiError> {
        let rendered = blocks::render(&msg.message);
        let thread = msg.place.thread.as_deref();
        let post = Post {
            channel: &msg.place.channel,
            thread_ts: thread,
            text: &rendered.text,
            blocks: rendered.blocks.as_deref(),
        };
        if let Some(user) = &msg.only_to {
            if user.platform != Platform::Slack {
                return Err(ApiError::Permanent {
                    method: "chat.postEphemeral",
                    code: format!("{user} is not a Slack user"),
                });
            }
            let ts = self.api.post_ephemeral(post, &user.id).await?;
            return Ok(MessageRef {
                place: msg.place.clone(),
                id: ts,
            });
        }
        let posted = self.api.post_message(post).await?;
        let place = Place {
            platform: Platform::Slack,
            channel: posted.channel.unwrap_or_else(|| msg.place.channel.clone()),
            thread: msg.place.thread.clone(),
        };
        if let Message::RunResult { run } = &msg.message {
            let thread_ts = thread.unwrap_or(&posted.ts);
            self.share_result_files(run, &place.channel, thread_ts, &rendered)
                .await;
        }
        Ok(MessageRef {
            place,
            id: posted.ts,
        })
    }

    /// The cut output as `output.txt`, then every file the run produced. The
    /// result message is already posted, so a failure here is logged, not
    /// returned: the core would otherwise post the result a second time.
    async fn share_result_files(
        &self,
        run: &RunView,
        channel: &str,
        thread_ts: &str,
        rendered: &Rendered,
    ) {
        if let Some(output) = &rendered.full_output {
            let up = Upload {
                channel,
                thread_ts,
                filename: "output.txt",
                title: "output.txt",
                content_type: "text/plain; charset=utf-8",
                bytes: output.as_bytes(),
            };
            if let Err(e) = self.api.upload(up).await {
                tracing::warn!(run_id = %run.run_id, error = %e, "uploading output.txt failed");
            }
        }
        for file in &run.files {
            if let Err(e) = self.share_file(file, channel, thread_ts).await {
                tracing::warn!(run_id = %run.run_id, file = %file.name, error = %e, "uploading a run's file failed");
            }
        }
    }

    async fn share_file(
        &self,
        file: &OutboundFile,
        channel: &str,
        thread_ts: &str,
    ) -> Result<(), String> {
        let len = tokio::fs::metadata(&file.path)
            .await
            .map_err(|e| format!("reading {}: {e}", file.path.display()))?
            .len();
        if len == 0 {
            tracing::debug!(file = %file.name, "empty file not uploaded");
            return Ok(());
        }
        if len > MAX_UPLOAD_BYTES as u64 {
            return Err(format!(
                "{len} bytes is over the {MAX_UPLOAD_BYTES}-byte upload cap"
            ));
        }
        let bytes = tokio::fs::read(&file.path)
            .await
            .map_err(|e| format!("reading {}: {e}", file.path.display()))?;
        self.api
            .upload(Upload {
                channel,
                thread_ts,
                filename: &file.name,
                title: &file.name,
                content_type: "application/octet-stream",
                bytes: &bytes,
            })
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Short answers to inbound events (not the core's messages).
impl Slack {
    /// An ephemeral note to one user in a channel (thread); failures are logged.
    pub(crate) async fn tell(
        &self,
        channel: &str,
        user: &str,
        thread_ts: Option<&str>,
        text: &str,
    ) {
        let text = escape(text);
        let post = Post {
            channel,
            thread_ts,
            text: &text,
            blocks: None,
        };
        if let Err(e) = self.api.post_ephemeral(post, user).await {
            tracing::warn!(channel, user, error = %e, "ephemeral reply failed");
        }
    }

    /// A visible reply in a thread; failures are logged.
    pub(crate) async fn reply_in_thread(&self, channel: &str, thread_ts: &str, text: &str) {
        let text = escape(text);
        let post = Post {
            channel,
            thread_ts: Some(thread_ts),
            text: &text,
            blocks: None,
        };
        if let Err(e) = self.api.post_message(post).await {
            tracing::warn!(channel, error = %e, "thread reply failed");
        }
    }
}
