//! The core's side of the chat port: the [`bridge`] that turns adapters'
//! verified events into engine commands, [`views`] that word runs for chat,
//! and the [`notifier`] that keeps each run's chat messages in step with it.

pub mod bridge;
pub mod checkpoints;
pub mod notifier;
mod quick;
pub mod views;
