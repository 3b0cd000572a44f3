//! CreateAcls, DescribeAcls, DeleteAcls: the keeper writes are `sluice_actors::broker::acls`'s
//! (Kafka's store); each broker's `AclWatcher` then applies them to its copy.

use sluice_actors::broker::acls::{self, AclStoreError};
use sluice_broker_core::acl::{check_binding, AclBinding, AclFilter, Operation};
use sluice_broker_core::BrokerError;
use sluice_net::Peer;
use tracing::info;

use super::authz::requester;
use super::BrokerService;

fn store_error(e: AclStoreError) -> BrokerError {
    BrokerError::KeeperUnavailable { reason: e.to_string() }
}

impl BrokerService {
    /// Adds each ACL; per ACL, done or why not (INVALID_REQUEST for one that cannot be).
    pub(crate) async fn create_acls(
        &self,
        peer: &Peer,
        bindings: Vec<AclBinding>,
    ) -> Result<Vec<Result<(), BrokerError>>, BrokerError> {
        self.check_cluster(peer, Operation::Alter)?;
        let keeper = self.keeper()?;
        let mut out = Vec::with_capacity(bindings.len());
        for b in bindings {
            let r = match check_binding(&b) {
                Err(reason) => Err(BrokerError::InvalidRequest { reason }),
                Ok(()) => acls::add(&keeper, &self.inner.acls, &b.pattern, std::slice::from_ref(&b.entry))
                    .await
                    .map_err(store_error),
            };
            if r.is_ok() {
                info!(target: "sluice::authorizer", by = %requester(peer).principal(), pattern = %b.pattern, entry = %b.entry, "ACL added");
            }
            out.push(r);
        }
        Ok(out)
    }

    /// The ACLs `filter` takes, from this broker's copy.
    pub(crate) fn describe_acls(
        &self,
        peer: &Peer,
        filter: &AclFilter,
    ) -> Result<Vec<AclBinding>, BrokerError> {
        self.check_cluster(peer, Operation::Describe)?;
        Ok(self.inner.acls.snapshot().matching(filter))
    }

    /// Removes what each filter takes; per filter, the ACLs removed or why not.
    pub(crate) async fn delete_acls(
        &self,
        peer: &Peer,
        filters: Vec<AclFilter>,
    ) -> Result<Vec<Result<Vec<AclBinding>, BrokerError>>, BrokerError> {
        self.check_cluster(peer, Operation::Alter)?;
        let keeper = self.keeper()?;
        let mut out = Vec::with_capacity(filters.len());
        for f in filters {
            let r = acls::remove(&keeper, &self.inner.acls, &f).await.map_err(store_error);
            if let Ok(removed) = &r {
                for b in removed {
                    info!(target: "sluice::authorizer", by = %requester(peer).principal(), pattern = %b.pattern, entry = %b.entry, "ACL removed");
                }
            }
            out.push(r);
        }
        Ok(out)
    }
}
