//! Request bodies being read, per caller, on this replica. The concurrency slot of a request is
//! taken once its model is known, and the body names the model; so without this gate a caller
//! limited to 4 requests at a time could have hundreds of large uploads read into memory before
//! the fifth was refused. A caller with a concurrency limit reads at most that many large
//! bodies at once; one more is refused before a byte of it is read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::plan::ScopeKind;

/// Bodies declared this small are not gated: they cost little, the global in-flight budget
/// bounds them, and a chat request (the hot path) skips the lookup.
pub const SMALL_BODY: u64 = 64 * 1024;

type Caller = (ScopeKind, Arc<str>);

#[derive(Default)]
pub struct BodyGate {
    reading: Mutex<HashMap<Caller, u64>>,
}

/// A caller's place among the bodies being read; given back when dropped.
pub struct BodyReadSlot {
    gate: Arc<BodyGate>,
    callers: Vec<Caller>,
}

impl BodyGate {
    /// A place for one more body under each `(scope, id, limit)`, or the first scope that is
    /// full (nothing taken then).
    pub fn enter(
        self: &Arc<Self>,
        caps: Vec<(ScopeKind, Arc<str>, u64)>,
    ) -> Result<BodyReadSlot, (ScopeKind, Arc<str>, u64)> {
        let mut reading = self.reading.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(full) = caps
            .iter()
            .find(|(kind, id, cap)| reading.get(&(*kind, id.clone())).copied().unwrap_or(0) >= *cap)
        {
            return Err(full.clone());
        }
        let mut callers = Vec::with_capacity(caps.len());
        for (kind, id, _) in caps {
            *reading.entry((kind, id.clone())).or_insert(0) += 1;
            callers.push((kind, id));
        }
        Ok(BodyReadSlot {
            gate: self.clone(),
            callers,
        })
    }
}

impl Drop for BodyReadSlot {
    fn drop(&mut self) {
        let mut reading = self.gate.reading.lock().unwrap_or_else(|p| p.into_inner());
        for caller in self.callers.drain(..) {
            if let Some(count) = reading.get_mut(&caller) {
                *count -= 1;
                if *count == 0 {
                    reading.remove(&caller);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_caller_is_refused_and_a_dropped_slot_frees_its_place() {
        let gate = Arc::new(BodyGate::default());
        let key: Arc<str> = Arc::from("k1");
        let user: Arc<str> = Arc::from("u1");
        let caps = || {
            vec![
                (ScopeKind::Key, key.clone(), 2),
                (ScopeKind::User, user.clone(), 1),
            ]
        };
        let first = gate.enter(caps()).expect("room");
        let refused = gate.enter(caps()).err().expect("the user is full");
        assert_eq!(refused.0, ScopeKind::User);
        // Refused asks took nothing: the key still has one place for another user's body.
        let other = gate
            .enter(vec![(ScopeKind::Key, key.clone(), 2)])
            .expect("room");
        drop(first);
        drop(other);
        assert!(gate.reading.lock().unwrap().is_empty());
        gate.enter(caps()).expect("room again");
    }
}
