//! Authorization of every request, for both doors: who the peer is as Kafka names it
//! (`User:<certificate name>`), the check of one operation on one resource against this
//! broker's copy of the ACLs (the rule is `sluice_broker_core::acl::Authorizer`), the typed
//! refusal with Kafka's code, and the audit line of every refusal.

use sluice_broker_core::acl::{Operation, Requester, ResourceType, CLUSTER_NAME};
use sluice_broker_core::BrokerError;
use sluice_net::Peer;
use tracing::info;

use super::BrokerService;

/// The principal of `peer`, as Kafka writes it.
pub(crate) fn principal(peer: &Peer) -> String {
    format!("User:{}", peer.principal.name)
}

impl BrokerService {
    /// Whether `peer` may do `op` to `name` of type `t`.
    pub(crate) fn allowed(&self, peer: &Peer, op: Operation, t: ResourceType, name: &str) -> bool {
        let principal = principal(peer);
        let host = peer.remote.ip().to_string();
        let who = Requester { principal: &principal, host: &host };
        self.inner.authorizer.authorize(&self.inner.acls.snapshot(), &who, op, t, name)
    }

    /// Whether `peer` may do `op` to some resource of type `t` (idempotent producers).
    pub(crate) fn allowed_any(&self, peer: &Peer, op: Operation, t: ResourceType) -> bool {
        let principal = principal(peer);
        let host = peer.remote.ip().to_string();
        let who = Requester { principal: &principal, host: &host };
        self.inner.authorizer.authorize_any(&self.inner.acls.snapshot(), &who, op, t)
    }

    /// `Ok` if `peer` may do `op` to topic `topic`; else Kafka's TOPIC_AUTHORIZATION_FAILED,
    /// logged.
    pub(crate) fn check_topic(&self, peer: &Peer, op: Operation, topic: &str) -> Result<(), BrokerError> {
        if self.allowed(peer, op, ResourceType::Topic, topic) {
            return Ok(());
        }
        Err(refused(
            peer,
            op,
            ResourceType::Topic,
            topic,
            BrokerError::TopicAuthorizationFailed {
                principal: principal(peer),
                operation: op.to_string(),
                topic: topic.to_string(),
            },
        ))
    }

    /// `Ok` if `peer` may do `op` to group `group`; else GROUP_AUTHORIZATION_FAILED, logged.
    pub(crate) fn check_group(&self, peer: &Peer, op: Operation, group: &str) -> Result<(), BrokerError> {
        if self.allowed(peer, op, ResourceType::Group, group) {
            return Ok(());
        }
        Err(refused(
            peer,
            op,
            ResourceType::Group,
            group,
            BrokerError::GroupAuthorizationFailed {
                principal: principal(peer),
                operation: op.to_string(),
                group: group.to_string(),
            },
        ))
    }

    /// `Ok` if `peer` may do `op` to the cluster; else CLUSTER_AUTHORIZATION_FAILED, logged.
    pub(crate) fn check_cluster(&self, peer: &Peer, op: Operation) -> Result<(), BrokerError> {
        if self.allowed(peer, op, ResourceType::Cluster, CLUSTER_NAME) {
            return Ok(());
        }
        Err(refused(
            peer,
            op,
            ResourceType::Cluster,
            CLUSTER_NAME,
            BrokerError::ClusterAuthorizationFailed { principal: principal(peer), action: op.to_string() },
        ))
    }

    /// Creating topic `topic`: Create on the cluster, or on the topic.
    pub(crate) fn check_create_topic(&self, peer: &Peer, topic: &str) -> Result<(), BrokerError> {
        if self.allowed(peer, Operation::Create, ResourceType::Cluster, CLUSTER_NAME) {
            return Ok(());
        }
        self.check_topic(peer, Operation::Create, topic)
    }
}

/// Logs a refusal (the audit line) and returns `error`.
fn refused(peer: &Peer, op: Operation, t: ResourceType, name: &str, error: BrokerError) -> BrokerError {
    info!(
        target: "sluice::authorizer",
        principal = %principal(peer),
        host = %peer.remote.ip(),
        operation = %op,
        resource_type = %t,
        resource = name,
        code = error.code(),
        "request refused by the ACLs (no Allow for it, or a Deny)"
    );
    metrics::counter!("sluice_authorization_refusals_total", "resource_type" => t.name()).increment(1);
    error
}
