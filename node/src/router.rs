//! Group id -> local replica. Answers `NotLeader` with the leader's address when this node's
//! replica is not the leader.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use proto::GroupId;

use crate::group::Group;

/// The replicas hosted by this node.
#[derive(Clone, Default)]
pub struct Router {
    groups: Arc<RwLock<BTreeMap<GroupId, Arc<Group>>>>,
}

impl Router {
    /// Registers a replica.
    pub fn insert(&self, group: Arc<Group>) {
        self.groups
            .write()
            .expect("router lock is never held across a panic")
            .insert(group.id, group);
    }

    /// Unregisters a replica, returning it.
    pub fn remove(&self, id: GroupId) -> Option<Arc<Group>> {
        self.groups.write().expect("router lock is never held across a panic").remove(&id)
    }

    /// The local replica of `id`.
    pub fn get(&self, id: GroupId) -> Option<Arc<Group>> {
        self.groups.read().expect("router lock is never held across a panic").get(&id).cloned()
    }

    /// Every local replica, by group id.
    pub fn all(&self) -> Vec<Arc<Group>> {
        self.groups
            .read()
            .expect("router lock is never held across a panic")
            .values()
            .cloned()
            .collect()
    }
}
