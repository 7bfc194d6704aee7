//! A core stand-in: records what the adapter hands it and answers as told.

use execgov_chat::{Inbound, InboundHandler, InboundReply, Place, PlatformUser, ReplyKind};
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;

pub struct Recorder {
    pub inbound: Mutex<Vec<Inbound>>,
    /// What the adapter refused before it became a command: (actor, reason).
    pub refused: Mutex<Vec<(String, String)>>,
    seen: Mutex<HashSet<String>>,
    changed: Notify,
    pub reply_kind: Mutex<ReplyKind>,
    pub delay: Mutex<Duration>,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            inbound: Mutex::default(),
            refused: Mutex::default(),
            seen: Mutex::default(),
            changed: Notify::new(),
            reply_kind: Mutex::new(ReplyKind::Info),
            delay: Mutex::new(Duration::ZERO),
        }
    }

    pub fn answer_with(&self, kind: ReplyKind) {
        *self.reply_kind.lock().unwrap() = kind;
    }

    pub fn received(&self) -> Vec<Inbound> {
        self.inbound.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) for `n` inbound events.
    pub async fn wait_for(&self, n: usize) -> Vec<Inbound> {
        let wait = async {
            loop {
                let notified = self.changed.notified();
                let got = self.received();
                if got.len() >= n {
                    return got;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("the handler was not called in time")
    }
}

#[async_trait::async_trait]
impl InboundHandler for Recorder {
    async fn handle(&self, inbound: Inbound) -> InboundReply {
        let delay = *self.delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        self.inbound.lock().unwrap().push(inbound.clone());
        self.changed.notify_waiters();
        InboundReply {
            kind: *self.reply_kind.lock().unwrap(),
            text: format!("answer to {:?} <ok>", inbound.content),
            run_id: None,
        }
    }

    async fn first_time(&self, event_id: &str) -> bool {
        self.seen.lock().unwrap().insert(event_id.to_string())
    }

    async fn refused(&self, actor: &PlatformUser, _place: &Place, reason: &str) {
        self.refused
            .lock()
            .unwrap()
            .push((actor.id.clone(), reason.to_string()));
        self.changed.notify_waiters();
    }
}
