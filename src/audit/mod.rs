//! The audit log's keys and witnesses, outside the database: the HMAC key every
//! entry is hashed with, and signed checkpoints of the chain's head.
//!
//! - `keys.rs`: `[audit] key` and `[audit] signing_key` (secret references), else
//!   keys generated once into `data_dir`; opening the store with its audit key.
//! - `checkpoints.rs`: signing a checkpoint (seq, hash, time; ed25519), the
//!   checkpoint file (JSON lines), reading it back for `audit verify --checkpoints`,
//!   and the loop `serve` runs.
//!
//! - `evidence.rs`: one run's signed evidence bundle, and checking it offline.
//! - `sink.rs`: `[audit] sink = "file:PATH"`, every entry appended as written.
//! - `export.rs`: `execgov audit export`, JSON lines in a versioned shape.
//!
//! The chain itself (append, verify, the pre-start check) lives in the store.

pub mod checkpoints;
pub mod evidence;
pub mod export;
pub mod keys;
pub mod sink;

pub use checkpoints::{SignedCheckpoint, read_checkpoints, write_checkpoint};
pub use keys::{audit_key, open_store, parse_public_key, public_key_token, signing_key};
