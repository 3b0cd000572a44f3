//! ZooKeeper's client protocol, as the keeper's ZooKeeper door speaks it (ZooKeeper 3.5–3.9
//! clients: the Java client and Curator, kazoo, the C client, the `zookeeper-client` crate).
//!
//! Every message is a frame: a 4-byte big-endian size, then jute records ([`jute`]). The
//! first frame of a connection is a [`ConnectRequest`], answered by a [`connect_response`];
//! after it each request is a `RequestHeader` (`xid`, op code) and the op's record, each
//! answer a `ReplyHeader` (`xid`, `zxid`, error code) and, when the error is 0, the op's
//! response record. Watch events are answers with `xid` -1 ([`watch_event`]).
//!
//! A connection whose first four bytes spell a four-letter word (`ruok`, `srvr`, ...) asks
//! for that word's report instead ([`four_letter_word`]).
//!
//! This crate decodes and encodes; which requests are served and what they mean is the
//! door's (`keeper/src/zookeeper`).

pub mod jute;

use jute::{JuteError, Reader, Writer};
use sluice_keeper_core::Stat;

/// Op codes (ZooKeeper's `ZooDefs.OpCode`).
pub mod op {
    #![allow(missing_docs)]
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const GET_ACL: i32 = 6;
    pub const SET_ACL: i32 = 7;
    pub const GET_CHILDREN: i32 = 8;
    pub const SYNC: i32 = 9;
    pub const PING: i32 = 11;
    pub const GET_CHILDREN2: i32 = 12;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const RECONFIG: i32 = 16;
    pub const CHECK_WATCHES: i32 = 17;
    pub const REMOVE_WATCHES: i32 = 18;
    pub const CREATE_CONTAINER: i32 = 19;
    pub const DELETE_CONTAINER: i32 = 20;
    pub const CREATE_TTL: i32 = 21;
    pub const MULTI_READ: i32 = 22;
    pub const AUTH: i32 = 100;
    pub const SET_WATCHES: i32 = 101;
    pub const SASL: i32 = 102;
    pub const GET_EPHEMERALS: i32 = 103;
    pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
    pub const SET_WATCHES2: i32 = 105;
    pub const ADD_WATCH: i32 = 106;
    pub const WHO_AM_I: i32 = 107;
    pub const CREATE_SESSION: i32 = -10;
    pub const CLOSE_SESSION: i32 = -11;
    pub const ERROR: i32 = -1;
}

/// Special `xid`s (ZooKeeper's `ClientCnxn`).
pub mod xid {
    /// A watch event.
    pub const NOTIFICATION: i32 = -1;
    /// A ping and its answer.
    pub const PING: i32 = -2;
    /// An auth packet and its answer.
    pub const AUTH: i32 = -4;
    /// The watches a reconnecting client sets again.
    pub const SET_WATCHES: i32 = -8;
}

/// Error codes the door itself answers with (the rest are the keeper's own, which carry
/// ZooKeeper's numbers: `sluice_keeper_core::ErrorCode`).
pub mod code {
    /// The operation is not served here.
    pub const UNIMPLEMENTED: i32 = -6;
    /// Bad arguments (an unknown create mode, watch type, ...).
    pub const BAD_ARGUMENTS: i32 = -8;
    /// The node does not exist.
    pub const NO_NODE: i32 = -101;
    /// The ACL is not one the keeper can keep.
    pub const INVALID_ACL: i32 = -114;
    /// Authentication failed (an addauth the keeper does not take).
    pub const AUTH_FAILED: i32 = -115;
    /// No such watcher (removeWatches / checkWatches).
    pub const NO_WATCHER: i32 = -121;
    /// A multi's op that was not run because an earlier one failed.
    pub const RUNTIME_INCONSISTENCY: i32 = -2;
}

/// ZooKeeper's permission bits.
pub use sluice_keeper_core::acl::perms;

/// A client's connect request, the first frame of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    /// The client's protocol version (0).
    pub protocol_version: i32,
    /// The newest zxid the client has seen.
    pub last_zxid_seen: i64,
    /// The session timeout it asks for, ms.
    pub timeout_ms: i32,
    /// The session to resume (0: a new one).
    pub session_id: i64,
    /// The session's password (16 bytes when resuming).
    pub password: Vec<u8>,
    /// Whether the client accepts a read-only server (newer clients send it).
    pub read_only: bool,
}

impl ConnectRequest {
    /// Decodes a connect frame's body.
    pub fn decode(body: &[u8]) -> Result<ConnectRequest, JuteError> {
        let mut r = Reader::new(body);
        let protocol_version = r.int("protocolVersion")?;
        let last_zxid_seen = r.long("lastZxidSeen")?;
        let timeout_ms = r.int("timeOut")?;
        let session_id = r.long("sessionId")?;
        let password = r.buffer("passwd")?.unwrap_or_default();
        // Clients before 3.4 do not send it.
        let read_only = r.remaining() > 0 && r.boolean("readOnly")?;
        Ok(ConnectRequest { protocol_version, last_zxid_seen, timeout_ms, session_id, password, read_only })
    }
}

/// The answer to a connect request. A session that cannot be resumed (expired, unknown,
/// wrong password) is answered with timeout 0 and session 0, which clients read as
/// "session expired".
pub fn connect_response(timeout_ms: i32, session_id: i64, password: &[u8]) -> Vec<u8> {
    let mut w = Writer::framed();
    w.int(0).int(timeout_ms).long(session_id).buffer(password).boolean(false);
    w.frame()
}

/// An ACL entry: permissions for an identity (`scheme`, `id`): the keeper's own.
pub use sluice_keeper_core::Acl;

fn read_acl(r: &mut Reader<'_>) -> Result<Acl, JuteError> {
    Ok(Acl { perms: r.int("acl perms")?, scheme: r.path("acl scheme")?, id: r.path("acl id")? })
}

fn acls(r: &mut Reader<'_>) -> Result<Vec<Acl>, JuteError> {
    Ok(r.vector("acl", read_acl)?.unwrap_or_default())
}

/// A create, in any of its four op codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Create {
    /// The op code: create, create2, createContainer or createTTL.
    pub op: i32,
    /// The path (the prefix for a sequential node).
    pub path: String,
    /// The data.
    pub data: Vec<u8>,
    /// The ACL.
    pub acl: Vec<Acl>,
    /// The create mode: 0 persistent, 1 ephemeral, 2 persistent sequential, 3 ephemeral
    /// sequential, 4 container, 5 persistent with TTL, 6 persistent sequential with TTL.
    pub flags: i32,
    /// The TTL, ms (createTTL only).
    pub ttl: Option<i64>,
}

impl Create {
    fn read(op: i32, r: &mut Reader<'_>) -> Result<Create, JuteError> {
        let path = r.path("path")?;
        let data = r.buffer("data")?.unwrap_or_default();
        let acl = acls(r)?;
        let flags = r.int("flags")?;
        let ttl = if op == op::CREATE_TTL { Some(r.long("ttl")?) } else { None };
        Ok(Create { op, path, data, acl, flags, ttl })
    }
}

/// A write inside a multi.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    /// A create.
    Create(Create),
    /// A delete (op code delete or deleteContainer).
    Delete {
        /// The path.
        path: String,
        /// The expected version (-1: any).
        version: i32,
    },
    /// A setData.
    SetData {
        /// The path.
        path: String,
        /// The data.
        data: Vec<u8>,
        /// The expected version (-1: any).
        version: i32,
    },
    /// A version check.
    Check {
        /// The path.
        path: String,
        /// The expected version (-1: any).
        version: i32,
    },
}

impl MultiOp {
    /// The op code the result carries back.
    pub fn op(&self) -> i32 {
        match self {
            MultiOp::Create(c) => c.op,
            MultiOp::Delete { .. } => op::DELETE,
            MultiOp::SetData { .. } => op::SET_DATA,
            MultiOp::Check { .. } => op::CHECK,
        }
    }
}

/// A read inside a multiRead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    /// getChildren.
    GetChildren(String),
    /// getData.
    GetData(String),
}

/// The watches a reconnecting client sets again (setWatches, setWatches2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetWatches {
    /// The newest zxid the client has seen.
    pub relative_zxid: i64,
    /// Data watches.
    pub data: Vec<String>,
    /// Exist watches (on missing nodes).
    pub exist: Vec<String>,
    /// Child watches.
    pub child: Vec<String>,
    /// Persistent watches (setWatches2).
    pub persistent: Vec<String>,
    /// Persistent recursive watches (setWatches2).
    pub persistent_recursive: Vec<String>,
}

/// A request after the connect, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// create, create2, createContainer, createTTL.
    Create(Create),
    /// delete.
    Delete {
        /// The path.
        path: String,
        /// The expected version (-1: any).
        version: i32,
    },
    /// exists.
    Exists {
        /// The path.
        path: String,
        /// Leave a watch.
        watch: bool,
    },
    /// getData.
    GetData {
        /// The path.
        path: String,
        /// Leave a watch.
        watch: bool,
    },
    /// setData.
    SetData {
        /// The path.
        path: String,
        /// The data.
        data: Vec<u8>,
        /// The expected version (-1: any).
        version: i32,
    },
    /// getACL.
    GetAcl(String),
    /// setACL.
    SetAcl {
        /// The path.
        path: String,
        /// The ACL.
        acl: Vec<Acl>,
        /// The expected ACL version (-1: any).
        version: i32,
    },
    /// getChildren (`with_stat`: getChildren2).
    GetChildren {
        /// The path.
        path: String,
        /// Leave a watch.
        watch: bool,
        /// Answer with the node's stat too.
        with_stat: bool,
    },
    /// sync.
    Sync(String),
    /// ping.
    Ping,
    /// check (outside a multi).
    Check {
        /// The path.
        path: String,
        /// The expected version.
        version: i32,
    },
    /// multi: writes, all or none.
    Multi(Vec<MultiOp>),
    /// multiRead: reads, each answered.
    MultiRead(Vec<ReadOp>),
    /// setWatches / setWatches2.
    SetWatches(SetWatches),
    /// addWatch.
    AddWatch {
        /// The path.
        path: String,
        /// 0: persistent, 1: persistent recursive.
        mode: i32,
    },
    /// removeWatches (`check_only`: checkWatches).
    RemoveWatches {
        /// The path.
        path: String,
        /// 1: children, 2: data, 3: any.
        kind: i32,
        /// Only check that there is such a watch.
        check_only: bool,
    },
    /// getEphemerals.
    GetEphemerals(String),
    /// getAllChildrenNumber.
    GetAllChildrenNumber(String),
    /// An auth packet.
    Auth {
        /// The scheme.
        scheme: String,
        /// The credentials.
        auth: Vec<u8>,
    },
    /// whoAmI.
    WhoAmI,
    /// closeSession.
    CloseSession,
    /// An op ZooKeeper has that the door does not serve (reconfig, SASL, ...): answered
    /// UNIMPLEMENTED, the connection and session stay.
    Unsupported(i32),
}

/// A decoded request: its `xid`, op code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framed {
    /// The request's id, echoed in the answer.
    pub xid: i32,
    /// The op code.
    pub op: i32,
    /// The request.
    pub request: Request,
}

/// Why a request frame was refused: the connection is closed (ZooKeeper does the same).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// An op code ZooKeeper does not have.
    #[error("unknown op code {op} (xid {xid})")]
    UnknownOp {
        /// The request id.
        xid: i32,
        /// The op code.
        op: i32,
    },
    /// The bytes are not the op's record.
    #[error("op {op} (xid {xid}): {source}")]
    Malformed {
        /// The request id.
        xid: i32,
        /// The op code.
        op: i32,
        /// What is wrong.
        source: JuteError,
    },
    /// Not even a request header.
    #[error(transparent)]
    Header(JuteError),
}

fn path_and_watch(r: &mut Reader<'_>) -> Result<(String, bool), JuteError> {
    Ok((r.path("path")?, r.boolean("watch")?))
}

fn decode_body(op: i32, r: &mut Reader<'_>) -> Result<Option<Request>, JuteError> {
    Ok(Some(match op {
        op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
            Request::Create(Create::read(op, r)?)
        }
        op::DELETE | op::DELETE_CONTAINER => {
            let path = r.path("path")?;
            let version = if op == op::DELETE { r.int("version")? } else { -1 };
            Request::Delete { path, version }
        }
        op::EXISTS => {
            let (path, watch) = path_and_watch(r)?;
            Request::Exists { path, watch }
        }
        op::GET_DATA => {
            let (path, watch) = path_and_watch(r)?;
            Request::GetData { path, watch }
        }
        op::SET_DATA => Request::SetData {
            path: r.path("path")?,
            data: r.buffer("data")?.unwrap_or_default(),
            version: r.int("version")?,
        },
        op::GET_ACL => Request::GetAcl(r.path("path")?),
        op::SET_ACL => Request::SetAcl { path: r.path("path")?, acl: acls(r)?, version: r.int("version")? },
        op::GET_CHILDREN | op::GET_CHILDREN2 => {
            let (path, watch) = path_and_watch(r)?;
            Request::GetChildren { path, watch, with_stat: op == op::GET_CHILDREN2 }
        }
        op::SYNC => Request::Sync(r.path("path")?),
        op::PING => Request::Ping,
        op::CHECK => Request::Check { path: r.path("path")?, version: r.int("version")? },
        op::MULTI => Request::Multi(multi(r)?),
        op::MULTI_READ => Request::MultiRead(multi_read(r)?),
        op::SET_WATCHES | op::SET_WATCHES2 => {
            let mut w = SetWatches {
                relative_zxid: r.long("relativeZxid")?,
                data: r.strings("dataWatches")?,
                exist: r.strings("existWatches")?,
                child: r.strings("childWatches")?,
                ..SetWatches::default()
            };
            if op == op::SET_WATCHES2 {
                w.persistent = r.strings("persistentWatches")?;
                w.persistent_recursive = r.strings("persistentRecursiveWatches")?;
            }
            Request::SetWatches(w)
        }
        op::ADD_WATCH => Request::AddWatch { path: r.path("path")?, mode: r.int("mode")? },
        op::REMOVE_WATCHES | op::CHECK_WATCHES => Request::RemoveWatches {
            path: r.path("path")?,
            kind: r.int("type")?,
            check_only: op == op::CHECK_WATCHES,
        },
        op::GET_EPHEMERALS => Request::GetEphemerals(r.path("prefixPath")?),
        op::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber(r.path("path")?),
        op::AUTH => {
            r.int("type")?;
            Request::Auth { scheme: r.path("scheme")?, auth: r.buffer("auth")?.unwrap_or_default() }
        }
        op::WHO_AM_I => Request::WhoAmI,
        op::CLOSE_SESSION => Request::CloseSession,
        op::RECONFIG | op::SASL | op::CREATE_SESSION => Request::Unsupported(op),
        _ => return Ok(None),
    }))
}

fn multi_header(r: &mut Reader<'_>) -> Result<(i32, bool), JuteError> {
    let op = r.int("multi header type")?;
    let done = r.boolean("multi header done")?;
    r.int("multi header err")?;
    Ok((op, done))
}

/// The ops of a multi or multiRead (`what`): each after its header, until the header that
/// says done; `one` reads an op of the given type, `None` for a type that cannot be there.
fn multi_ops<T>(
    r: &mut Reader<'_>,
    what: &'static str,
    one: impl Fn(i32, &mut Reader<'_>) -> Result<Option<T>, JuteError>,
) -> Result<Vec<T>, JuteError> {
    let mut ops = Vec::new();
    loop {
        let (op, done) = multi_header(r)?;
        if done {
            return Ok(ops);
        }
        match one(op, r)? {
            Some(o) => ops.push(o),
            None => return Err(JuteError { what, reason: format!("op {op} cannot be part of a {what}") }),
        }
    }
}

fn multi(r: &mut Reader<'_>) -> Result<Vec<MultiOp>, JuteError> {
    multi_ops(r, "multi", |op, r| {
        Ok(Some(match op {
            op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                MultiOp::Create(Create::read(op, r)?)
            }
            op::DELETE => MultiOp::Delete { path: r.path("path")?, version: r.int("version")? },
            op::DELETE_CONTAINER => MultiOp::Delete { path: r.path("path")?, version: -1 },
            op::SET_DATA => MultiOp::SetData {
                path: r.path("path")?,
                data: r.buffer("data")?.unwrap_or_default(),
                version: r.int("version")?,
            },
            op::CHECK => MultiOp::Check { path: r.path("path")?, version: r.int("version")? },
            _ => return Ok(None),
        }))
    })
}

fn multi_read(r: &mut Reader<'_>) -> Result<Vec<ReadOp>, JuteError> {
    multi_ops(r, "multiRead", |op, r| {
        Ok(Some(match op {
            op::GET_CHILDREN => ReadOp::GetChildren(path_and_watch(r)?.0),
            op::GET_DATA => ReadOp::GetData(path_and_watch(r)?.0),
            _ => return Ok(None),
        }))
    })
}

/// Decodes a request frame (after the connect): header and body. Bytes after the body are
/// ignored, as ZooKeeper ignores them.
pub fn decode_request(frame: &[u8]) -> Result<Framed, RequestError> {
    let mut r = Reader::new(frame);
    let xid = r.int("request header xid").map_err(RequestError::Header)?;
    let op = r.int("request header type").map_err(RequestError::Header)?;
    match decode_body(op, &mut r) {
        Ok(Some(request)) => Ok(Framed { xid, op, request }),
        Ok(None) => Err(RequestError::UnknownOp { xid, op }),
        Err(source) => Err(RequestError::Malformed { xid, op, source }),
    }
}

/// Writes a `Stat` in ZooKeeper's field order.
pub fn write_stat(w: &mut Writer, s: &Stat) {
    w.long(s.czxid)
        .long(s.mzxid)
        .long(s.ctime)
        .long(s.mtime)
        .int(s.version)
        .int(s.cversion)
        .int(s.aversion)
        .long(s.ephemeral_owner)
        .int(s.data_length)
        .int(s.num_children)
        .long(s.pzxid);
}

/// Writes an ACL vector.
pub fn write_acl(w: &mut Writer, acl: &[Acl]) {
    w.int(acl.len() as i32);
    for a in acl {
        w.int(a.perms).string(&a.scheme).string(&a.id);
    }
}

/// An answer: the reply header, and the body `body` writes when `err` is 0.
pub fn reply(xid: i32, zxid: i64, err: i32, body: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::framed();
    w.int(xid).long(zxid).int(err);
    if err == 0 {
        body(&mut w);
    }
    w.frame()
}

/// One result of a multi or multiRead: its op code (or -1 for an error) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiResult {
    /// A create: the path (with the stat for create2, createContainer and createTTL).
    Created {
        /// The op code.
        op: i32,
        /// The actual path.
        path: String,
        /// The new node's stat.
        stat: Stat,
    },
    /// A delete.
    Deleted,
    /// A setData: the new stat.
    DataSet(Stat),
    /// A check.
    Checked,
    /// A getChildren (multiRead).
    Children(Vec<String>),
    /// A getData (multiRead).
    Data(Vec<u8>, Stat),
    /// A failure (or, in a failed multi, 0 for an op before the failure and
    /// RUNTIME_INCONSISTENCY for one after it).
    Error(i32),
}

/// Writes a multi's results (header err is 0: each result says how its op went).
pub fn write_multi(w: &mut Writer, results: &[MultiResult]) {
    for r in results {
        let (op, err) = match r {
            MultiResult::Created { op, .. } => (*op, 0),
            MultiResult::Deleted => (op::DELETE, 0),
            MultiResult::DataSet(_) => (op::SET_DATA, 0),
            MultiResult::Checked => (op::CHECK, 0),
            MultiResult::Children(_) => (op::GET_CHILDREN, 0),
            MultiResult::Data(..) => (op::GET_DATA, 0),
            MultiResult::Error(code) => (op::ERROR, *code),
        };
        w.int(op).boolean(false).int(err);
        match r {
            MultiResult::Created { op, path, stat } => {
                w.string(path);
                if *op != op::CREATE {
                    write_stat(w, stat);
                }
            }
            MultiResult::Deleted | MultiResult::Checked => {}
            MultiResult::DataSet(stat) => write_stat(w, stat),
            MultiResult::Children(names) => {
                w.strings(names);
            }
            MultiResult::Data(data, stat) => {
                w.buffer(data);
                write_stat(w, stat);
            }
            MultiResult::Error(code) => {
                w.int(*code);
            }
        }
    }
    w.int(-1).boolean(true).int(-1);
}

/// ZooKeeper's watch event types.
pub mod event {
    #![allow(missing_docs)]
    pub const NODE_CREATED: i32 = 1;
    pub const NODE_DELETED: i32 = 2;
    pub const NODE_DATA_CHANGED: i32 = 3;
    pub const NODE_CHILDREN_CHANGED: i32 = 4;
    /// The keeper state of a connected client.
    pub const SYNC_CONNECTED: i32 = 3;
}

/// A watch event frame: `type` at `path`, fired by `zxid`.
pub fn watch_event(event_type: i32, path: &str, zxid: i64) -> Vec<u8> {
    let mut w = Writer::framed();
    w.int(xid::NOTIFICATION).long(zxid).int(0);
    w.int(event_type).int(event::SYNC_CONNECTED).string(path);
    w.frame()
}

/// The four-letter words ZooKeeper knows, each its 4-byte code.
pub const FOUR_LETTER_WORDS: &[&str] = &[
    "ruok", "srvr", "stat", "mntr", "conf", "cons", "wchs", "envi", "isro", "crst", "srst", "dump", "wchc",
    "wchp", "dirs", "gtmk", "stmk", "hash",
];

/// The four-letter word a connection's first four bytes spell, if they spell one.
pub fn four_letter_word(first: [u8; 4]) -> Option<&'static str> {
    FOUR_LETTER_WORDS.iter().copied().find(|w| w.as_bytes() == first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(xid: i32, op: i32, body: impl FnOnce(&mut Writer)) -> Vec<u8> {
        let mut w = Writer::framed();
        w.int(xid).int(op);
        body(&mut w);
        w.frame()[4..].to_vec()
    }

    #[test]
    fn connect_requests_with_and_without_the_read_only_flag() {
        let mut w = Writer::framed();
        w.int(0).long(5).int(30_000).long(0).buffer(&[0; 16]);
        let old = w.frame();
        let c = ConnectRequest::decode(&old[4..]).expect("old client");
        assert_eq!((c.last_zxid_seen, c.timeout_ms, c.session_id, c.read_only), (5, 30_000, 0, false));
        let mut w = Writer::framed();
        w.int(0).long(5).int(30_000).long(7).buffer(&[1; 16]).boolean(true);
        let new = w.frame();
        let c = ConnectRequest::decode(&new[4..]).expect("new client");
        assert_eq!((c.session_id, c.password.len(), c.read_only), (7, 16, true));
        let answer = connect_response(30_000, 7, &[1; 16]);
        assert_eq!(answer.len(), 4 + 4 + 4 + 8 + 4 + 16 + 1);
    }

    #[test]
    fn requests_decode_and_unknown_ops_are_named() {
        let create = request(3, op::CREATE2, |w| {
            w.string("/a").buffer(b"x").int(1).int(31).string("world").string("anyone").int(3);
        });
        let f = decode_request(&create).expect("create2");
        assert_eq!(f.xid, 3);
        let Request::Create(c) = f.request else { panic!("{f:?}") };
        assert_eq!((c.path.as_str(), c.flags, c.acl, c.ttl), ("/a", 3, vec![Acl::open()], None));

        let multi = request(4, op::MULTI, |w| {
            w.int(op::CHECK).boolean(false).int(-1).string("/a").int(0);
            w.int(op::DELETE).boolean(false).int(-1).string("/a").int(-1);
            w.int(-1).boolean(true).int(-1);
        });
        assert_eq!(
            decode_request(&multi).expect("multi").request,
            Request::Multi(vec![
                MultiOp::Check { path: "/a".into(), version: 0 },
                MultiOp::Delete { path: "/a".into(), version: -1 }
            ])
        );
        let watches = request(xid::SET_WATCHES, op::SET_WATCHES2, |w| {
            w.long(9)
                .strings(&["/d"])
                .strings::<&str>(&[])
                .strings(&["/c"])
                .strings(&["/p"])
                .strings(&["/r"]);
        });
        let Request::SetWatches(sw) = decode_request(&watches).expect("setWatches2").request else {
            panic!()
        };
        assert_eq!((sw.relative_zxid, sw.persistent_recursive), (9, vec!["/r".to_string()]));

        assert_eq!(
            decode_request(&request(5, 999, |_| {})),
            Err(RequestError::UnknownOp { xid: 5, op: 999 })
        );
        assert_eq!(
            decode_request(&request(5, op::RECONFIG, |_| {})).expect("known").request,
            Request::Unsupported(16)
        );
        assert!(matches!(
            decode_request(&request(6, op::GET_DATA, |w| {
                w.int(1 << 30);
            })),
            Err(RequestError::Malformed { xid: 6, op: op::GET_DATA, .. })
        ));
        assert!(matches!(decode_request(&[0, 0]), Err(RequestError::Header(_))));
    }

    #[test]
    fn multi_results_and_events_are_framed_as_zookeeper_writes_them() {
        let stat = Stat { czxid: 1, version: 2, ..Stat::default() };
        let frame = reply(7, 42, 0, |w| {
            write_multi(
                w,
                &[MultiResult::Created { op: op::CREATE, path: "/a".into(), stat }, MultiResult::Error(-101)],
            )
        });
        let mut r = Reader::new(&frame[4..]);
        assert_eq!((r.int("xid"), r.long("zxid"), r.int("err")), (Ok(7), Ok(42), Ok(0)));
        assert_eq!((r.int("t"), r.boolean("d"), r.int("e")), (Ok(op::CREATE), Ok(false), Ok(0)));
        assert_eq!(r.path("path"), Ok("/a".to_string()));
        assert_eq!((r.int("t"), r.boolean("d"), r.int("e")), (Ok(-1), Ok(false), Ok(-101)));
        assert_eq!(r.int("err"), Ok(-101));
        assert_eq!((r.int("t"), r.boolean("d"), r.int("e")), (Ok(-1), Ok(true), Ok(-1)));
        assert_eq!(r.remaining(), 0);
        // An error answer has no body.
        assert_eq!(reply(1, 2, -101, |w| write_stat(w, &stat)).len(), 4 + 16);

        let ev = watch_event(event::NODE_DATA_CHANGED, "/a", 9);
        let mut r = Reader::new(&ev[4..]);
        assert_eq!((r.int("xid"), r.long("zxid"), r.int("err")), (Ok(-1), Ok(9), Ok(0)));
        assert_eq!((r.int("type"), r.int("state"), r.path("path")), (Ok(3), Ok(3), Ok("/a".to_string())));
        assert_eq!(four_letter_word(*b"ruok"), Some("ruok"));
        assert_eq!(four_letter_word([0, 0, 0, 45]), None);
    }
}
