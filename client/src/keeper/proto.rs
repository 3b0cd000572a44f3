//! The messages of `sluice-keeper/1` a client sends and receives (declared in
//! [`sluice_proto::keeper`]). The server's handler trait is not part of the SDK.
pub use sluice_proto::keeper::{
    AddAuth, AddWatch, Children, Close, Connect, Connected, CountDescendants, EnsembleStatus, Existence,
    Exists, GetAcl, GetChildren, GetData, GetEphemerals, KeeperProtocol, KeeperPush, NodeAcl, NodeData, Ping,
    RemoveWatches, ServerStatus, SetWatches, Status, SyncRequest, Write,
};
