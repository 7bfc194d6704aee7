//! What `/readyz` waits for besides the database: parts that register here (the
//! chat adapters) and say whether they are connected now.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A shared registry of named parts and whether each is ready. Cheap to clone:
/// clones share one registry. A part that never registers is not waited for.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    parts: Arc<Mutex<BTreeMap<String, bool>>>,
}

impl Readiness {
    pub fn new() -> Readiness {
        Readiness::default()
    }

    /// Registers `name` (e.g. `"slack"`, `"matrix"`) or updates it: `false` while
    /// connecting or after a disconnect, `true` once connected.
    pub fn set(&self, name: impl Into<String>, ready: bool) {
        self.parts
            .lock()
            .expect("readiness registry")
            .insert(name.into(), ready);
    }

    /// Every registered part and its state, by name.
    pub fn snapshot(&self) -> Vec<(String, bool)> {
        self.parts
            .lock()
            .expect("readiness registry")
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// True when every registered part is ready.
    pub fn all_ready(&self) -> bool {
        self.parts
            .lock()
            .expect("readiness registry")
            .values()
            .all(|v| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_that_is_not_ready_holds_readiness() {
        let r = Readiness::new();
        assert!(r.all_ready(), "nothing registered: ready");
        r.set("slack", false);
        assert!(!r.clone().all_ready());
        r.set("slack", true);
        assert!(r.all_ready());
        assert_eq!(r.snapshot(), vec![("slack".to_string(), true)]);
    }
}
