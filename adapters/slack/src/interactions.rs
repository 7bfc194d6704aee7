//! Button clicks and modal submissions: Approve goes straight to the core;
//! on a critical run it opens a modal for the approver's 2FA code, and Deny
//! one for a reason; their submissions go to the core. The
//! actor is always the payload's `user.id`, which Slack signed, never a value
//! from the buttons. A click gets its 200 at once and the work runs after; a
//! dialog's submission is decided before its answer, so a refusal (a wrong
//! code, say) shows under the dialog's input, which stays open for another try
//! (`response_action: errors`), and the dialog closes only when it is done.

use crate::Slack;
use crate::blocks::{
    APPROVE_ACTION, APPROVE_CALLBACK_ID, APPROVE_CODE_ACTION, CODE_INPUT, DENY_ACTION,
    DENY_CALLBACK_ID, DialogMetadata, REASON_INPUT, approve_modal, deny_modal,
};
use execgov_chat::{Inbound, InboundContent, Place, Platform, PlatformUser, ReplyKind};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// How long a dialog's submission waits for its decision before Slack gets a
/// plain 200 (Slack gives up at 3 s); past it, a refusal comes as a private message.
const DIALOG_ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// The parts of an interaction payload the adapter reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Interaction {
    #[serde(rename = "type")]
    kind: String,
    user: Option<Id>,
    #[serde(default)]
    channel: Option<Id>,
    #[serde(default)]
    container: Option<Container>,
    #[serde(default)]
    trigger_id: Option<String>,
    #[serde(default)]
    actions: Vec<Action>,
    #[serde(default)]
    view: Option<View>,
}

#[derive(Debug, Clone, Deserialize)]
struct Id {
    id: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Container {
    #[serde(default)]
    channel_id: Option<String>,
    #[serde(default)]
    message_ts: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Action {
    action_id: String,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct View {
    #[serde(default)]
    callback_id: Option<String>,
    #[serde(default)]
    private_metadata: Option<String>,
    #[serde(default)]
    state: Option<ViewState>,
}

#[derive(Debug, Clone, Deserialize)]
struct ViewState {
    #[serde(default)]
    values: HashMap<String, HashMap<String, InputValue>>,
}

#[derive(Debug, Clone, Deserialize)]
struct InputValue {
    #[serde(default)]
    value: Option<String>,
}

/// A payload that cannot be what it claims.
#[derive(Debug, thiserror::Error)]
#[error("bad interaction payload: {0}")]
pub(crate) struct BadInteraction(&'static str);

/// What a checked interaction asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Intent {
    Approve {
        run_id: String,
        channel_id: String,
        /// From the step-up dialog.
        code: Option<String>,
    },
    OpenApprove {
        trigger_id: String,
        meta: DialogMetadata,
    },
    OpenDeny {
        trigger_id: String,
        meta: DialogMetadata,
    },
    Deny {
        meta: DialogMetadata,
        reason: Option<String>,
    },
}

/// Checks an interaction and starts its work. Returns the body of the ack:
/// `None` for an empty 200 (which also closes a submitted dialog), or the
/// errors that keep a dialog open.
pub(crate) async fn on_interaction(
    slack: &Arc<Slack>,
    payload: Interaction,
) -> Result<Option<serde_json::Value>, BadInteraction> {
    let user = payload
        .user
        .as_ref()
        .map(|u| u.id.clone())
        .filter(|u| !u.is_empty())
        .ok_or(BadInteraction("no user"))?;
    let trigger = payload.trigger_id.clone();
    let intents = intents(&payload)?;
    if payload.kind == "view_submission" {
        return Ok(match intents.into_iter().next() {
            Some(intent) => slack.clone().submit(user, trigger, intent).await,
            None => None,
        });
    }
    for intent in intents {
        let slack = slack.clone();
        let user = user.clone();
        let trigger = trigger.clone();
        tokio::spawn(async move { slack.on_intent(user, trigger, intent, None).await });
    }
    Ok(None)
}

fn intents(p: &Interaction) -> Result<Vec<Intent>, BadInteraction> {
    match p.kind.as_str() {
        "block_actions" => {
            let channel = p
                .channel
                .as_ref()
                .map(|c| c.id.clone())
                .or_else(|| p.container.as_ref().and_then(|c| c.channel_id.clone()));
            let message_ts = p.container.as_ref().and_then(|c| c.message_ts.clone());
            let mut out = Vec::new();
            for action in &p.actions {
                let run_id = match action.value.as_deref().map(str::trim) {
                    Some(v) if !v.is_empty() => v.to_string(),
                    _ => continue,
                };
                let channel_id = || channel.clone().ok_or(BadInteraction("no channel"));
                match action.action_id.as_str() {
                    APPROVE_ACTION => out.push(Intent::Approve {
                        run_id,
                        channel_id: channel_id()?,
                        code: None,
                    }),
                    APPROVE_CODE_ACTION | DENY_ACTION => {
                        // Both open a dialog that remembers where the click was.
                        let trigger_id = p
                            .trigger_id
                            .clone()
                            .ok_or(BadInteraction("no trigger_id"))?;
                        let meta = DialogMetadata {
                            run_id,
                            channel_id: channel_id()?,
                            message_ts: message_ts.clone(),
                        };
                        out.push(if action.action_id == DENY_ACTION {
                            Intent::OpenDeny { trigger_id, meta }
                        } else {
                            Intent::OpenApprove { trigger_id, meta }
                        });
                    }
                    _ => {}
                }
            }
            Ok(out)
        }
        "view_submission" => {
            let Some(view) = p.view.as_ref() else {
                return Ok(Vec::new());
            };
            let callback = view.callback_id.as_deref();
            if callback != Some(DENY_CALLBACK_ID) && callback != Some(APPROVE_CALLBACK_ID) {
                return Ok(Vec::new());
            }
            let meta: DialogMetadata = view
                .private_metadata
                .as_deref()
                .and_then(|m| serde_json::from_str(m).ok())
                .ok_or(BadInteraction("modal without its metadata"))?;
            if callback == Some(APPROVE_CALLBACK_ID) {
                return Ok(vec![Intent::Approve {
                    run_id: meta.run_id,
                    channel_id: meta.channel_id,
                    // An empty code reaches the core, which says what is missing.
                    code: Some(input(view, CODE_INPUT).unwrap_or_default()),
                }]);
            }
            Ok(vec![Intent::Deny {
                meta,
                reason: input(view, REASON_INPUT),
            }])
        }
        _ => Ok(Vec::new()),
    }
}

/// A modal's input (`block_id` = `action_id` = `id`), trimmed; `None` when left empty.
fn input(view: &View, id: &str) -> Option<String> {
    let values = &view.state.as_ref()?.values;
    values
        .get(id)
        .and_then(|block| block.get(id))
        .or_else(|| values.values().flat_map(|b| b.values()).next())
        .and_then(|input| input.value.as_deref())
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
}

impl Slack {
    /// Opens a decision dialog for a click; when Slack will not, tells the
    /// clicker what to type instead.
    async fn open_modal(
        &self,
        user: &str,
        trigger_id: &str,
        meta: &DialogMetadata,
        view: &serde_json::Value,
        what: &str,
        fallback: &str,
    ) {
        if let Err(e) = self.api.open_view(trigger_id, view).await {
            tracing::warn!(run_id = %meta.run_id, error = %e, "opening the {what} modal failed");
            let text = format!("Could not open the {what} dialog; {fallback} instead.");
            self.tell(&meta.channel_id, user, None, &text).await;
        }
    }

    /// A dialog's decision, answered in the dialog: a refusal keeps it open
    /// with the reason under its input; anything else closes it.
    async fn submit(
        self: Arc<Self>,
        user: String,
        trigger: Option<String>,
        intent: Intent,
    ) -> Option<serde_json::Value> {
        let field = match &intent {
            Intent::Approve { .. } => CODE_INPUT,
            Intent::Deny { .. } => REASON_INPUT,
            Intent::OpenApprove { .. } | Intent::OpenDeny { .. } => return None,
        };
        let (answer, refused) = oneshot::channel();
        tokio::spawn(async move { self.on_intent(user, trigger, intent, Some(answer)).await });
        match tokio::time::timeout(DIALOG_ANSWER_WITHIN, refused).await {
            Ok(Ok(why)) => Some(serde_json::json!({
                "response_action": "errors",
                "errors": { field: why },
            })),
            _ => None,
        }
    }

    /// Does what the intent asks. A refusal goes to `answer` when the
    /// dialog still waits for it, else to the person privately.
    async fn on_intent(
        self: Arc<Self>,
        user: String,
        trigger: Option<String>,
        intent: Intent,
        answer: Option<oneshot::Sender<String>>,
    ) {
        let (channel_id, content) = match intent {
            Intent::OpenDeny { trigger_id, meta } => {
                let fallback = format!("type `deny {} <reason>`", meta.run_id);
                self.open_modal(
                    &user,
                    &trigger_id,
                    &meta,
                    &deny_modal(&meta),
                    "deny",
                    &fallback,
                )
                .await;
                return;
            }
            Intent::OpenApprove { trigger_id, meta } => {
                let fallback = format!("type `/run approve {} CODE`", meta.run_id);
                self.open_modal(
                    &user,
                    &trigger_id,
                    &meta,
                    &approve_modal(&meta),
                    "approve",
                    &fallback,
                )
                .await;
                return;
            }
            Intent::Approve {
                run_id,
                channel_id,
                code,
            } => (channel_id, InboundContent::Approve { run_id, code }),
            Intent::Deny { meta, reason } => (
                meta.channel_id,
                InboundContent::Deny {
                    run_id: meta.run_id,
                    reason,
                },
            ),
        };
        let inbound = Inbound {
            event_id: trigger,
            actor: PlatformUser {
                platform: Platform::Slack,
                id: user.clone(),
            },
            place: Place::new(Platform::Slack, channel_id.clone()),
            content,
            // A click or a dialog: only Slack and ExecGov see what it carries.
            direct: true,
            files: Vec::new(),
        };
        let reply = self.handler.handle(inbound).await;
        if reply.kind != ReplyKind::Error {
            return;
        }
        let unheard = match answer {
            Some(answer) => answer.send(reply.text).err(),
            None => Some(reply.text),
        };
        if let Some(text) = unheard {
            self.tell(&channel_id, &user, None, &text).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Interaction {
        serde_json::from_value(v).unwrap()
    }

    fn click(action_id: &str) -> Interaction {
        parse(json!({
            "type": "block_actions",
            "user": { "id": "U0BOB", "username": "bob" },
            "team": { "id": "T1" },
            "api_app_id": "A1",
            "trigger_id": "123.456.abc",
            "container": { "type": "message", "message_ts": "1700000000.000100", "channel_id": "C0456APPROVE" },
            "channel": { "id": "C0456APPROVE", "name": "approvals" },
            "actions": [{ "action_id": action_id, "block_id": "b", "value": "31", "type": "button", "action_ts": "1700000001.0" }]
        }))
    }

    #[test]
    fn approve_click_names_the_run_and_channel() {
        assert_eq!(
            intents(&click(APPROVE_ACTION)).unwrap(),
            vec![Intent::Approve {
                run_id: "31".into(),
                channel_id: "C0456APPROVE".into(),
                code: None
            }]
        );
    }

    #[test]
    fn deny_click_opens_the_modal_with_its_place() {
        assert_eq!(
            intents(&click(DENY_ACTION)).unwrap(),
            vec![Intent::OpenDeny {
                trigger_id: "123.456.abc".into(),
                meta: DialogMetadata {
                    run_id: "31".into(),
                    channel_id: "C0456APPROVE".into(),
                    message_ts: Some("1700000000.000100".into()),
                }
            }]
        );
    }

    #[test]
    fn other_buttons_are_ignored() {
        assert!(intents(&click("someone_elses_button")).unwrap().is_empty());
    }

    #[test]
    fn submission_carries_the_reason() {
        let meta = r#"{"run_id":"31","channel_id":"C0456APPROVE","message_ts":"1.2"}"#;
        let submit = |value: serde_json::Value| {
            parse(json!({
                "type": "view_submission",
                "user": { "id": "U0BOB" },
                "view": {
                    "callback_id": DENY_CALLBACK_ID,
                    "private_metadata": meta,
                    "state": { "values": { "reason": { "reason": { "type": "plain_text_input", "value": value } } } }
                }
            }))
        };
        let expected = |reason: Option<&str>| {
            vec![Intent::Deny {
                meta: DialogMetadata {
                    run_id: "31".into(),
                    channel_id: "C0456APPROVE".into(),
                    message_ts: Some("1.2".into()),
                },
                reason: reason.map(str::to_string),
            }]
        };
        assert_eq!(
            intents(&submit(json!("  too risky today "))).unwrap(),
            expected(Some("too risky today"))
        );
        assert_eq!(
            intents(&submit(json!(null))).unwrap(),
            expected(None),
            "the reason is optional"
        );
        assert_eq!(intents(&submit(json!(""))).unwrap(), expected(None));
    }

    #[test]
    fn a_submission_without_metadata_is_refused() {
        let p = parse(json!({
            "type": "view_submission",
            "user": { "id": "U0BOB" },
            "view": { "callback_id": DENY_CALLBACK_ID, "private_metadata": "" }
        }));
        assert!(intents(&p).is_err());
    }
}
