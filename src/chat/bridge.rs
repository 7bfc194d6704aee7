//! Adapters hand verified events to the core through [`InboundHandler`]; this
//! is the core's implementation: the grammar, then the engine.

use crate::command::{Command, ParseError};
use crate::engine::{Engine, Request};
use crate::types::RunId;
use execgov_chat::{
    Inbound, InboundContent, InboundHandler, InboundReply, Place, PlatformUser, ReplyKind,
    cap_echoes,
};
use std::sync::Arc;

/// The engine, as adapters see it.
#[derive(Debug, Clone)]
pub struct Bridge {
    engine: Arc<Engine>,
}

impl Bridge {
    pub fn new(engine: Arc<Engine>) -> Bridge {
        Bridge { engine }
    }
}

fn parse(content: &InboundContent) -> Result<Command, ParseError> {
    match content {
        InboundContent::Text {
            text,
            implicit_run: true,
        } => Command::parse_run_prefixed(text),
        InboundContent::Text {
            text,
            implicit_run: false,
        } => Command::parse(text),
        InboundContent::Approve { run_id, code } => Ok(Command::Approve {
            run: RunId::parse(run_id).map_err(ParseError::BadRunId)?,
            code: code.clone(),
        }),
        InboundContent::Deny { run_id, reason } => Ok(Command::Deny {
            run: RunId::parse(run_id).map_err(ParseError::BadRunId)?,
            reason: reason.clone().filter(|r| !r.trim().is_empty()),
        }),
    }
}

#[async_trait::async_trait]
impl InboundHandler for Bridge {
    #[tracing::instrument(skip_all, fields(platform = %inbound.actor.platform, user = %inbound.actor.id))]
    async fn handle(&self, inbound: Inbound) -> InboundReply {
        let command = match parse(&inbound.content) {
            Ok(c) => c,
            Err(e) => {
                return InboundReply {
                    kind: ReplyKind::Error,
                    text: cap_echoes(&e.to_string()),
                    run_id: None,
                };
            }
        };
        let actor = self.engine.actor_for(&inbound.actor);
        let reply = self
            .engine
            .handle(Request {
                actor,
                place: inbound.place,
                command,
                private: inbound.direct,
                files: inbound.files,
            })
            .await;
        InboundReply {
            kind: reply.kind,
            text: reply.text,
            run_id: reply.run.map(|r| r.id.to_string()),
        }
    }

    /// Audited as `run.refused` without a run, as the engine audits a request
    /// it refuses before it becomes a run (an unknown script, bad arguments).
    async fn refused(&self, actor: &PlatformUser, place: &Place, reason: &str) {
        let actor = self.engine.actor_for(actor);
        let details = serde_json::json!({ "place": place, "reason": reason });
        if let Err(e) = self
            .engine
            .store()
            .audit(
                &actor.audit_name(),
                "run.refused",
                None,
                details,
                self.engine.now(),
            )
            .await
        {
            tracing::error!(error = %e, reason, "auditing a refused chat request failed");
        }
    }

    async fn first_time(&self, event_id: &str) -> bool {
        let store = self.engine.store();
        match store.first_time(event_id, self.engine.now()).await {
            Ok(first) => first,
            Err(e) => {
                // Better to risk a duplicate than to drop a command: the store's
                // one-decision-per-approver rule still holds for approvals.
                tracing::error!(error = %e, event_id, "recording an inbound event failed; handling it anyway");
                true
            }
        }
    }
}
