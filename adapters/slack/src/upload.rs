//! Files into a thread with Slack's external upload flow:
//! `files.getUploadURLExternal` (name, length) → POST the bytes to the
//! `upload_url` it returns → `files.completeUploadExternal` (id, title, channel,
//! thread). slack-morphism does all three through the same http-capable client.

use crate::api::{Api, retrying};
use crate::error::ApiError;
use slack_morphism::prelude::*;

/// Files larger than this are not uploaded (they stay behind the audit link).
pub(crate) const MAX_UPLOAD_BYTES: usize = 50 * 1024 * 1024;

/// One file to share in a thread.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Upload<'a> {
    pub channel: &'a str,
    pub thread_ts: &'a str,
    pub filename: &'a str,
    pub title: &'a str,
    pub content_type: &'a str,
    pub bytes: &'a [u8],
}

impl Api {
    /// Uploads one file into a thread; returns Slack's file id.
    pub(crate) async fn upload(&self, up: Upload<'_>) -> Result<String, ApiError> {
        let token = &self.bot_token;
        let reserved = retrying("files.getUploadURLExternal", || async {
            self.client
                .open_session(token)
                .get_upload_url_external(&SlackApiFilesGetUploadUrlExternalRequest::new(
                    up.filename.to_string(),
                    up.bytes.len(),
                ))
                .await
        })
        .await?;
        retrying("files.upload", || async {
            self.client
                .open_session(token)
                .files_upload_via_url(&SlackApiFilesUploadViaUrlRequest::new(
                    reserved.upload_url.clone(),
                    up.bytes.to_vec(),
                    up.content_type.to_string(),
                ))
                .await
        })
        .await?;
        let complete = SlackApiFilesCompleteUploadExternalRequest::new(vec![
            SlackApiFilesComplete::new(reserved.file_id.clone()).with_title(up.title.to_string()),
        ])
        .with_channel_id(SlackChannelId::new(up.channel.to_string()))
        .with_thread_ts(SlackTs::new(up.thread_ts.to_string()));
        retrying("files.completeUploadExternal", || async {
            self.client
                .open_session(token)
                .files_complete_upload_external(&complete)
                .await
        })
        .await?;
        Ok(reserved.file_id.0)
    }
}
