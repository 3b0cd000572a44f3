//! Authorization of every request, for both doors: who the peer is as Kafka names it
//! (`User:<certificate name>`), the check of one operation on one resource against this
//! broker's copy of the ACLs (the rule is `sluice_broker_core::acl::Authorizer`), the typed
//! refusal with Kafka's code (`acl::refusal`), and the audit line of every refusal.

use sluice_broker_core::acl::{self, Operation, Requester, ResourceType, CLUSTER_NAME};
use sluice_broker_core::BrokerError;
use sluice_net::Peer;
use tracing::info;

use super::BrokerService;

/// Who `peer` is, as the rule takes it (borrowed: a check allocates nothing).
pub(crate) fn requester(peer: &Peer) -> Requester<'_> {
    Requester { user: &peer.principal.name, host: peer.remote.ip() }
}

impl BrokerService {
    /// Whether `peer` may do `op` to `name` of type `t`.
    pub(crate) fn allowed(&self, peer: &Peer, op: Operation, t: ResourceType, name: &str) -> bool {
        self.inner.authorizer.authorize(&self.inner.acls.snapshot(), &requester(peer), op, t, name)
    }

    /// Whether `peer` may do `op` to some resource of type `t` (idempotent producers).
    pub(crate) fn allowed_any(&self, peer: &Peer, op: Operation, t: ResourceType) -> bool {
        self.inner.authorizer.authorize_any(&self.inner.acls.snapshot(), &requester(peer), op, t)
    }

    /// `Ok` if `peer` may do `op` to `name` of type `t`; else Kafka's refusal for the type,
    /// logged and counted.
    pub(crate) fn check(
        &self,
        peer: &Peer,
        op: Operation,
        t: ResourceType,
        name: &str,
    ) -> Result<(), BrokerError> {
        if self.allowed(peer, op, t, name) {
            return Ok(());
        }
        let who = requester(peer);
        info!(
            target: "sluice::authorizer",
            principal = %who.principal(),
            host = %who.host,
            operation = %op,
            resource_type = %t,
            resource = name,
            "request refused by the ACLs (no Allow for it, or a Deny)"
        );
        metrics::counter!("sluice_authorization_refusals_total", "resource_type" => t.name()).increment(1);
        Err(acl::refusal(&who, op, t, name))
    }

    /// [`Self::check`] on a topic (TOPIC_AUTHORIZATION_FAILED).
    pub(crate) fn check_topic(&self, peer: &Peer, op: Operation, topic: &str) -> Result<(), BrokerError> {
        self.check(peer, op, ResourceType::Topic, topic)
    }

    /// [`Self::check`] on a group (GROUP_AUTHORIZATION_FAILED).
    pub(crate) fn check_group(&self, peer: &Peer, op: Operation, group: &str) -> Result<(), BrokerError> {
        self.check(peer, op, ResourceType::Group, group)
    }

    /// [`Self::check`] on the cluster (CLUSTER_AUTHORIZATION_FAILED).
    pub(crate) fn check_cluster(&self, peer: &Peer, op: Operation) -> Result<(), BrokerError> {
        self.check(peer, op, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// Creating topic `topic`: Create on the cluster, or on the topic.
    pub(crate) fn check_create_topic(&self, peer: &Peer, topic: &str) -> Result<(), BrokerError> {
        if self.allowed(peer, Operation::Create, ResourceType::Cluster, CLUSTER_NAME) {
            return Ok(());
        }
        self.check_topic(peer, Operation::Create, topic)
    }
}
