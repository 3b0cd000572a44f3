//! Kafka's authorization model, sans-IO: resource patterns, access entries, the cache every
//! broker holds, the rule that decides a request ([`Authorizer::authorize`]), the filters of
//! DescribeAcls/DeleteAcls, and the znodes Kafka's ZooKeeper-mode authorizer keeps them in.
//!
//! **The rule** (Kafka's `AclAuthorizer`):
//! 1. A principal in `super.users` may do anything.
//! 2. The ACLs that apply to a resource are those on its exact name (LITERAL), on `*`
//!    (LITERAL wildcard), and on every PREFIXED pattern its name starts with.
//! 3. If none apply at all (to anyone), `allow.everyone.if.no.acl.found` decides.
//! 4. A matching Deny (principal itself or `User:*`, host itself or `*`, the operation or
//!    `All`) refuses; Deny wins over Allow.
//! 5. Otherwise a matching Allow admits; Describe is implied by Read, Write, Delete and Alter,
//!    DescribeConfigs by AlterConfigs.
//!
//! **Storage** (byte-compatible with Kafka's ZooKeeper mode):
//!
//! | path | holds |
//! |---|---|
//! | `/kafka-acl/<Type>/<name>` | LITERAL ACLs: `{"version":1,"acls":[{"principal":"User:a","permissionType":"Allow","operation":"Read","host":"*"}]}` |
//! | `/kafka-acl-extended/prefixed/<Type>/<name>` | PREFIXED ACLs, same JSON |
//! | `/kafka-acl-changes/acl_changes_<seq>` | `<Type>:<name>`: a LITERAL resource's ACLs changed |
//! | `/kafka-acl-extended-changes/acl_changes_<seq>` | `{"version":1,"resourceType":"Topic","name":"t-","patternType":"PREFIXED"}` |

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::BrokerError;
use crate::znodes::ZnodeError;

/// The cluster resource's name (Kafka's `kafka-cluster`).
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A LITERAL pattern on this name matches every resource of its type; as a principal, every
/// principal.
pub const WILDCARD: &str = "*";
/// The principal of every user.
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// LITERAL ACLs.
pub const ACL_ROOT: &str = "/kafka-acl";
/// PREFIXED ACLs.
pub const PREFIXED_ACL_ROOT: &str = "/kafka-acl-extended/prefixed";
/// Changes to LITERAL ACLs.
pub const ACL_CHANGES: &str = "/kafka-acl-changes";
/// Changes to PREFIXED ACLs.
pub const EXTENDED_ACL_CHANGES: &str = "/kafka-acl-extended-changes";
/// The name a change notification is created under (the keeper appends the sequence).
pub const CHANGE_NODE_PREFIX: &str = "acl_changes_";
/// How long a change notification is kept (Kafka's 15 minutes): brokers that were away
/// longer load everything anew anyway.
pub const CHANGE_EXPIRY_MS: u64 = 15 * 60 * 1000;

/// The persistent znodes the ACL store needs.
pub const ACL_PATHS: &[&str] = &[
    ACL_ROOT,
    "/kafka-acl/Topic",
    "/kafka-acl/Group",
    "/kafka-acl/Cluster",
    "/kafka-acl/TransactionalId",
    "/kafka-acl-extended",
    PREFIXED_ACL_ROOT,
    "/kafka-acl-extended/prefixed/Topic",
    "/kafka-acl-extended/prefixed/Group",
    "/kafka-acl-extended/prefixed/Cluster",
    "/kafka-acl-extended/prefixed/TransactionalId",
    ACL_CHANGES,
    EXTENDED_ACL_CHANGES,
];

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident, $what:literal { $($(#[$vm:meta])* $v:ident = $code:literal, $text:literal;)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name { $($(#[$vm])* $v,)* }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$v,)*];

            /// Kafka's wire code.
            pub fn code(self) -> i8 {
                match self { $($name::$v => $code,)* }
            }

            /// The value of Kafka's wire code, if it names one.
            pub fn from_code(code: i8) -> Option<Self> {
                match code { $($code => Some($name::$v),)* _ => None }
            }

            /// Kafka's name (as in the znodes and in `kafka-acls.sh` output).
            pub fn name(self) -> &'static str {
                match self { $($name::$v => $text,)* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = String;

            /// Kafka's name in any case, with or without underscores (`cluster_action`,
            /// `ClusterAction`, `CLUSTERACTION`).
            fn from_str(s: &str) -> Result<Self, String> {
                let want: String = s.chars().filter(|c| *c != '_' && *c != '-').collect();
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.name().eq_ignore_ascii_case(&want))
                    .ok_or_else(|| {
                        let names: Vec<&str> = $name::ALL.iter().map(|v| v.name()).collect();
                        format!("{s:?} is not {}: one of {}", $what, names.join(", "))
                    })
            }
        }
    };
}

named_enum!(
    /// What an ACL protects.
    ResourceType, "a resource type" {
        /// A topic.
        Topic = 2, "Topic";
        /// A consumer group.
        Group = 3, "Group";
        /// The cluster (`kafka-cluster`).
        Cluster = 4, "Cluster";
        /// A transactional producer's id.
        TransactionalId = 5, "TransactionalId";
    }
);

named_enum!(
    /// How an ACL's resource name matches.
    PatternType, "a pattern type" {
        /// The name itself (or `*`, every name).
        Literal = 3, "LITERAL";
        /// Every name that starts with it.
        Prefixed = 4, "PREFIXED";
    }
);

named_enum!(
    /// What a principal does to a resource.
    Operation, "an operation" {
        /// Every operation.
        All = 2, "All";
        /// Consume; commit a group's offsets.
        Read = 3, "Read";
        /// Produce.
        Write = 4, "Write";
        /// Create topics.
        Create = 5, "Create";
        /// Delete topics, records, groups.
        Delete = 6, "Delete";
        /// Add partitions; elect leaders; change ACLs.
        Alter = 7, "Alter";
        /// See that it exists, its offsets, its coordinator.
        Describe = 8, "Describe";
        /// Replicate and control (brokers among themselves).
        ClusterAction = 9, "ClusterAction";
        /// Read configs.
        DescribeConfigs = 10, "DescribeConfigs";
        /// Change configs.
        AlterConfigs = 11, "AlterConfigs";
        /// Be an idempotent producer.
        IdempotentWrite = 12, "IdempotentWrite";
    }
);

named_enum!(
    /// Whether an ACL admits or refuses.
    Permission, "a permission type" {
        /// Refuses (wins over any Allow).
        Deny = 2, "Deny";
        /// Admits.
        Allow = 3, "Allow";
    }
);

/// Kafka's Java enum name of a CamelCase name (`ClusterAction` → `CLUSTER_ACTION`), as
/// `kafka-acls.sh` prints them.
pub fn java_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut previous_upper = true;
    for c in name.chars() {
        if c.is_ascii_uppercase() && !previous_upper {
            out.push('_');
        }
        previous_upper = c.is_ascii_uppercase();
        out.push(c.to_ascii_uppercase());
    }
    out
}

impl ResourceType {
    /// The operations that mean something on this type (Kafka's table; kafka-acls.sh
    /// refuses others).
    pub fn operations(self) -> &'static [Operation] {
        use Operation::*;
        match self {
            ResourceType::Topic => {
                &[Read, Write, Create, Describe, Delete, Alter, DescribeConfigs, AlterConfigs, All]
            }
            ResourceType::Group => &[Read, Describe, Delete, All],
            ResourceType::Cluster => {
                &[Create, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, Alter, Describe, All]
            }
            ResourceType::TransactionalId => &[Describe, Write, All],
        }
    }
}

impl Operation {
    /// The operations whose Allow also allows this one.
    fn allowed_by(self) -> &'static [Operation] {
        use Operation::*;
        match self {
            Describe => &[Describe, Read, Write, Delete, Alter, All],
            DescribeConfigs => &[DescribeConfigs, AlterConfigs, All],
            Read => &[Read, All],
            Write => &[Write, All],
            Create => &[Create, All],
            Delete => &[Delete, All],
            Alter => &[Alter, All],
            ClusterAction => &[ClusterAction, All],
            AlterConfigs => &[AlterConfigs, All],
            IdempotentWrite => &[IdempotentWrite, All],
            All => &[All],
        }
    }
}

/// A set of resources: a type, a name, and how the name matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourcePattern {
    /// The type.
    pub resource_type: ResourceType,
    /// The name (`*` with LITERAL: every name).
    pub name: String,
    /// How the name matches.
    pub pattern_type: PatternType,
}

impl fmt::Display for ResourcePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ResourcePattern(resourceType={}, name={}, patternType={})",
            java_name(self.resource_type.name()),
            self.name,
            self.pattern_type
        )
    }
}

/// Who may (or may not) do what from where.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccessEntry {
    /// `User:<name>`, or `User:*`.
    pub principal: String,
    /// The client's address, or `*`.
    pub host: String,
    /// The operation.
    pub operation: Operation,
    /// Allow or Deny.
    pub permission: Permission,
}

impl fmt::Display for AccessEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "(principal={}, host={}, operation={}, permissionType={})",
            self.principal,
            self.host,
            java_name(self.operation.name()),
            java_name(self.permission.name())
        )
    }
}

/// An ACL: an entry on a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    /// The resources.
    pub pattern: ResourcePattern,
    /// The entry.
    pub entry: AccessEntry,
}

/// Which pattern types a filter takes (Kafka's `PatternType` in filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PatternFilter {
    /// Every pattern (with the name, if given, matched exactly).
    Any,
    /// The patterns that apply to the named resource: LITERAL on it, LITERAL `*`, PREFIXED
    /// ones it starts with.
    Match,
    /// This pattern type only.
    Only(PatternType),
}

impl PatternFilter {
    /// Kafka's wire code (ANY 1, MATCH 2, LITERAL 3, PREFIXED 4).
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            1 => Some(PatternFilter::Any),
            2 => Some(PatternFilter::Match),
            c => PatternType::from_code(c).map(PatternFilter::Only),
        }
    }
}

/// A filter over ACLs (DescribeAcls, DeleteAcls): `None` fields match anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    /// The resource type.
    pub resource_type: Option<ResourceType>,
    /// The resource name.
    pub name: Option<String>,
    /// The pattern types.
    pub pattern: PatternFilter,
    /// The principal.
    pub principal: Option<String>,
    /// The host.
    pub host: Option<String>,
    /// The operation.
    pub operation: Option<Operation>,
    /// The permission.
    pub permission: Option<Permission>,
}

impl AclFilter {
    /// A filter taking every ACL.
    pub fn any() -> Self {
        AclFilter {
            resource_type: None,
            name: None,
            pattern: PatternFilter::Any,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        }
    }

    /// Whether the filter takes ACLs on `pattern` (whatever their entries).
    pub fn matches_pattern(&self, pattern: &ResourcePattern) -> bool {
        if self.resource_type.is_some_and(|t| t != pattern.resource_type) {
            return false;
        }
        match (&self.pattern, &self.name) {
            (PatternFilter::Any, None) => true,
            (PatternFilter::Any, Some(name)) => *name == pattern.name,
            (PatternFilter::Only(t), None) => *t == pattern.pattern_type,
            (PatternFilter::Only(t), Some(name)) => *t == pattern.pattern_type && *name == pattern.name,
            (PatternFilter::Match, None) => true,
            (PatternFilter::Match, Some(name)) => match pattern.pattern_type {
                PatternType::Literal => pattern.name == *name || pattern.name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&pattern.name),
            },
        }
    }

    /// Whether the filter takes `entry`.
    pub fn matches_entry(&self, entry: &AccessEntry) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == entry.principal)
            && self.host.as_ref().is_none_or(|h| *h == entry.host)
            && self.operation.is_none_or(|o| o == entry.operation)
            && self.permission.is_none_or(|p| p == entry.permission)
    }

    /// Whether the filter takes `binding`.
    pub fn matches(&self, binding: &AclBinding) -> bool {
        self.matches_pattern(&binding.pattern) && self.matches_entry(&binding.entry)
    }
}

/// Why an ACL cannot be created (Kafka's INVALID_REQUEST cases).
pub fn check_binding(binding: &AclBinding) -> Result<(), String> {
    let p = &binding.pattern;
    if p.name.is_empty() {
        return Err("the resource name is empty".into());
    }
    if p.resource_type == ResourceType::Cluster && p.name != CLUSTER_NAME {
        return Err(format!("the cluster resource is named {CLUSTER_NAME}, not {:?}", p.name));
    }
    if p.pattern_type == PatternType::Prefixed && p.name == WILDCARD {
        return Err("a PREFIXED pattern cannot be `*`: use LITERAL `*` for every name".into());
    }
    let principal = &binding.entry.principal;
    match principal.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(()),
        _ => {
            Err(format!("{principal:?} is not a principal: write it as User:<name> (or User:* for everyone)"))
        }
    }
}

/// `existing` with `added` appended (each entry once), or `None` when every one is there
/// already (CreateAcls of an ACL that exists succeeds without a write).
pub fn with_added(existing: &[AccessEntry], added: &[AccessEntry]) -> Option<Vec<AccessEntry>> {
    let mut out = existing.to_vec();
    for e in added {
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    (out.len() != existing.len()).then_some(out)
}

/// `existing` split into what `filter`'s entry part keeps and what it removes.
pub fn without(existing: &[AccessEntry], filter: &AclFilter) -> (Vec<AccessEntry>, Vec<AccessEntry>) {
    existing.iter().cloned().partition(|e| !filter.matches_entry(e))
}

/// Every broker's copy of the ACLs, indexed for the check on every request.
#[derive(Debug, Clone, Default)]
pub struct AclCache {
    literal: HashMap<ResourceType, HashMap<String, Vec<AccessEntry>>>,
    prefixed: HashMap<ResourceType, Prefixed>,
}

#[derive(Debug, Clone, Default)]
struct Prefixed {
    by_prefix: HashMap<String, Vec<AccessEntry>>,
    /// The lengths of the prefixes present, so a check tries only those.
    lengths: BTreeMap<usize, usize>,
}

impl AclCache {
    /// An empty cache.
    pub fn new() -> Self {
        AclCache::default()
    }

    /// Replaces `pattern`'s entries (empty: removes the pattern).
    pub fn set(&mut self, pattern: &ResourcePattern, entries: Vec<AccessEntry>) {
        match pattern.pattern_type {
            PatternType::Literal => {
                let map = self.literal.entry(pattern.resource_type).or_default();
                if entries.is_empty() {
                    map.remove(&pattern.name);
                } else {
                    map.insert(pattern.name.clone(), entries);
                }
            }
            PatternType::Prefixed => {
                let p = self.prefixed.entry(pattern.resource_type).or_default();
                let len = pattern.name.len();
                let removing = entries.is_empty();
                let existed = if removing {
                    p.by_prefix.remove(&pattern.name).is_some()
                } else {
                    p.by_prefix.insert(pattern.name.clone(), entries).is_some()
                };
                match (existed, removing) {
                    (false, false) => *p.lengths.entry(len).or_default() += 1,
                    (true, true) => {
                        if let Some(n) = p.lengths.get_mut(&len) {
                            *n -= 1;
                            if *n == 0 {
                                p.lengths.remove(&len);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// `pattern`'s entries.
    pub fn get(&self, pattern: &ResourcePattern) -> &[AccessEntry] {
        let found = match pattern.pattern_type {
            PatternType::Literal => {
                self.literal.get(&pattern.resource_type).and_then(|m| m.get(&pattern.name))
            }
            PatternType::Prefixed => {
                self.prefixed.get(&pattern.resource_type).and_then(|p| p.by_prefix.get(&pattern.name))
            }
        };
        found.map_or(&[], Vec::as_slice)
    }

    /// Every ACL, in pattern order.
    pub fn bindings(&self) -> Vec<AclBinding> {
        let mut out = Vec::new();
        for (t, m) in &self.literal {
            for (name, entries) in m {
                let pattern = ResourcePattern {
                    resource_type: *t,
                    name: name.clone(),
                    pattern_type: PatternType::Literal,
                };
                out.extend(entries.iter().map(|e| AclBinding { pattern: pattern.clone(), entry: e.clone() }));
            }
        }
        for (t, p) in &self.prefixed {
            for (name, entries) in &p.by_prefix {
                let pattern = ResourcePattern {
                    resource_type: *t,
                    name: name.clone(),
                    pattern_type: PatternType::Prefixed,
                };
                out.extend(entries.iter().map(|e| AclBinding { pattern: pattern.clone(), entry: e.clone() }));
            }
        }
        out.sort();
        out
    }

    /// The ACLs `filter` takes, in pattern order.
    pub fn matching(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.bindings().into_iter().filter(|b| filter.matches(b)).collect()
    }

    /// How many ACLs there are.
    pub fn len(&self) -> usize {
        let literal: usize = self.literal.values().flat_map(|m| m.values()).map(Vec::len).sum();
        let prefixed: usize = self.prefixed.values().flat_map(|p| p.by_prefix.values()).map(Vec::len).sum();
        literal + prefixed
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` with each list of entries that applies to `name` of type `t`.
    fn applying<'a>(&'a self, t: ResourceType, name: &str, mut f: impl FnMut(&'a [AccessEntry])) {
        if let Some(m) = self.literal.get(&t) {
            if let Some(e) = m.get(name) {
                f(e);
            }
            if name != WILDCARD {
                if let Some(e) = m.get(WILDCARD) {
                    f(e);
                }
            }
        }
        if let Some(p) = self.prefixed.get(&t) {
            for &len in p.lengths.keys() {
                if len > name.len() {
                    break;
                }
                if let Some(prefix) = name.get(..len) {
                    if let Some(e) = p.by_prefix.get(prefix) {
                        f(e);
                    }
                }
            }
        }
    }
}

/// The principal type of every certificate's principal.
pub const USER: &str = "User:";

/// Who is asking, from where: taken as they come with the request, so a check allocates
/// nothing (it runs on every produce and fetch).
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    /// The `<name>` of the principal `User:<name>`.
    pub user: &'a str,
    /// The client's address.
    pub host: IpAddr,
}

impl Requester<'_> {
    /// The principal as Kafka writes it, `User:<name>` (for messages).
    pub fn principal(&self) -> String {
        format!("{USER}{}", self.user)
    }
}

impl AccessEntry {
    fn applies_to(&self, who: &Requester<'_>) -> bool {
        (self.principal == WILDCARD_PRINCIPAL || self.principal.strip_prefix(USER) == Some(who.user))
            && (self.host == WILDCARD || self.host.parse::<IpAddr>() == Ok(who.host))
    }
}

/// The settings of the rule: `super.users` and `allow.everyone.if.no.acl.found`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authorizer {
    /// The names of the `User:` principals that may do anything (other principal types
    /// never match a certificate's).
    super_users: HashSet<String>,
    /// Whether a resource no ACL applies to is open to everyone.
    allow_everyone_if_no_acl_found: bool,
}

impl Authorizer {
    /// The rule with `super.users` (principals, `User:<name>`) and
    /// `allow.everyone.if.no.acl.found`.
    pub fn new<'a>(
        super_users: impl IntoIterator<Item = &'a str>,
        allow_everyone_if_no_acl_found: bool,
    ) -> Self {
        let super_users =
            super_users.into_iter().filter_map(|p| p.strip_prefix(USER)).map(str::to_string).collect();
        Authorizer { super_users, allow_everyone_if_no_acl_found }
    }

    /// Whether `who` may do `op` to `name` of type `t` (see the module's rule).
    pub fn authorize(
        &self,
        acls: &AclCache,
        who: &Requester<'_>,
        op: Operation,
        t: ResourceType,
        name: &str,
    ) -> bool {
        if self.super_users.contains(who.user) {
            return true;
        }
        let (mut any, mut denied, mut allowed) = (false, false, false);
        let allowing = op.allowed_by();
        acls.applying(t, name, |entries| {
            any |= !entries.is_empty();
            for e in entries.iter().filter(|e| e.applies_to(who)) {
                match e.permission {
                    Permission::Deny => denied |= e.operation == op || e.operation == Operation::All,
                    Permission::Allow => allowed |= allowing.contains(&e.operation),
                }
            }
        });
        if !any {
            return self.allow_everyone_if_no_acl_found;
        }
        !denied && allowed
    }

    /// Whether `who` may do `op` to some resource of type `t` (Kafka's
    /// `authorizeByResourceType`, used for idempotent producers): an Allow on some pattern
    /// that no Deny of `who` covers entirely.
    pub fn authorize_any(
        &self,
        acls: &AclCache,
        who: &Requester<'_>,
        op: Operation,
        t: ResourceType,
    ) -> bool {
        if self.super_users.contains(who.user) {
            return true;
        }
        let allowing = op.allowed_by();
        let mut denied_literal = BTreeSet::new();
        let mut denied_prefixes = Vec::new();
        let mut allowed = Vec::new();
        for b in acls.bindings() {
            if b.pattern.resource_type != t || !b.entry.applies_to(who) {
                continue;
            }
            match b.entry.permission {
                Permission::Deny if b.entry.operation == op || b.entry.operation == Operation::All => {
                    match b.pattern.pattern_type {
                        PatternType::Literal if b.pattern.name == WILDCARD => return false,
                        PatternType::Literal => {
                            denied_literal.insert(b.pattern.name);
                        }
                        PatternType::Prefixed => denied_prefixes.push(b.pattern.name),
                    }
                }
                Permission::Allow if allowing.contains(&b.entry.operation) => allowed.push(b.pattern),
                _ => {}
            }
        }
        allowed.iter().any(|p| {
            let covered_by_prefix = denied_prefixes.iter().any(|d| p.name.starts_with(d.as_str()));
            match p.pattern_type {
                PatternType::Literal => !covered_by_prefix && !denied_literal.contains(&p.name),
                PatternType::Prefixed => !covered_by_prefix,
            }
        }) || (allowed.is_empty() && acls.is_empty() && self.allow_everyone_if_no_acl_found)
    }
}

/// Kafka's refusal of `op` on `name` of type `t` to `who`: TOPIC (29), GROUP (30), CLUSTER
/// (31) or TRANSACTIONAL_ID (53) AUTHORIZATION_FAILED, naming who lacked what.
pub fn refusal(who: &Requester<'_>, op: Operation, t: ResourceType, name: &str) -> BrokerError {
    let (principal, operation) = (who.principal(), op.to_string());
    match t {
        ResourceType::Topic => {
            BrokerError::TopicAuthorizationFailed { principal, operation, topic: name.into() }
        }
        ResourceType::Group => {
            BrokerError::GroupAuthorizationFailed { principal, operation, group: name.into() }
        }
        ResourceType::Cluster => BrokerError::ClusterAuthorizationFailed { principal, action: operation },
        ResourceType::TransactionalId => {
            BrokerError::TransactionalIdAuthorizationFailed { principal, operation, id: name.into() }
        }
    }
}

/// The znode holding `pattern`'s ACLs.
pub fn acl_path(pattern: &ResourcePattern) -> String {
    let root = match pattern.pattern_type {
        PatternType::Literal => ACL_ROOT,
        PatternType::Prefixed => PREFIXED_ACL_ROOT,
    };
    format!("{root}/{}/{}", pattern.resource_type, pattern.name)
}

/// The parent of the type's ACL znodes (children are resource names).
pub fn acl_type_path(pattern_type: PatternType, t: ResourceType) -> String {
    let root = match pattern_type {
        PatternType::Literal => ACL_ROOT,
        PatternType::Prefixed => PREFIXED_ACL_ROOT,
    };
    format!("{root}/{t}")
}

/// The change notification prefix for a pattern type (the keeper appends the sequence).
pub fn change_prefix(pattern_type: PatternType) -> String {
    let root = match pattern_type {
        PatternType::Literal => ACL_CHANGES,
        PatternType::Prefixed => EXTENDED_ACL_CHANGES,
    };
    format!("{root}/{CHANGE_NODE_PREFIX}")
}

#[derive(Serialize, Deserialize)]
struct StoredAcls {
    version: i32,
    acls: Vec<StoredEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredEntry {
    principal: String,
    permission_type: String,
    operation: String,
    host: String,
}

/// The JSON of an ACL znode.
pub fn encode_acls(entries: &[AccessEntry]) -> Vec<u8> {
    let stored = StoredAcls {
        version: 1,
        acls: entries
            .iter()
            .map(|e| StoredEntry {
                principal: e.principal.clone(),
                permission_type: e.permission.name().to_string(),
                operation: e.operation.name().to_string(),
                host: e.host.clone(),
            })
            .collect(),
    };
    serde_json::to_vec(&stored).unwrap_or_default()
}

/// The entries an ACL znode holds.
pub fn decode_acls(path: &str, data: &[u8]) -> Result<Vec<AccessEntry>, ZnodeError> {
    let bad = |reason: String| ZnodeError { path: path.to_string(), what: "ACL list", reason };
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let stored: StoredAcls = crate::znodes::parse(path, "ACL list", data)?;
    stored
        .acls
        .into_iter()
        .map(|s| {
            Ok(AccessEntry {
                operation: s.operation.parse().map_err(bad)?,
                permission: s.permission_type.parse().map_err(bad)?,
                principal: s.principal,
                host: s.host,
            })
        })
        .collect()
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExtendedChange {
    version: i32,
    resource_type: String,
    name: String,
    pattern_type: String,
}

/// The data of a change notification for `pattern`.
pub fn encode_change(pattern: &ResourcePattern) -> Vec<u8> {
    match pattern.pattern_type {
        PatternType::Literal => format!("{}:{}", pattern.resource_type, pattern.name).into_bytes(),
        PatternType::Prefixed => serde_json::to_vec(&ExtendedChange {
            version: 1,
            resource_type: pattern.resource_type.to_string(),
            name: pattern.name.clone(),
            pattern_type: pattern.pattern_type.to_string(),
        })
        .unwrap_or_default(),
    }
}

/// The pattern a change notification names; `pattern_type` says which changes path it
/// came from.
pub fn decode_change(
    path: &str,
    pattern_type: PatternType,
    data: &[u8],
) -> Result<ResourcePattern, ZnodeError> {
    let bad = |reason: String| ZnodeError { path: path.to_string(), what: "ACL change notification", reason };
    match pattern_type {
        PatternType::Literal => {
            let text = std::str::from_utf8(data).map_err(|e| bad(e.to_string()))?;
            let (t, name) =
                text.split_once(':').ok_or_else(|| bad(format!("{text:?} is not <Type>:<name>")))?;
            Ok(ResourcePattern {
                resource_type: t.parse().map_err(bad)?,
                name: name.to_string(),
                pattern_type: PatternType::Literal,
            })
        }
        PatternType::Prefixed => {
            let c: ExtendedChange = crate::znodes::parse(path, "ACL change notification", data)?;
            Ok(ResourcePattern {
                resource_type: c.resource_type.parse().map_err(bad)?,
                name: c.name,
                pattern_type: c.pattern_type.parse().map_err(bad)?,
            })
        }
    }
}

/// The sequence number of a change notification's name (`acl_changes_0000000007` → 7).
pub fn change_sequence(child: &str) -> Option<i64> {
    child.strip_prefix(CHANGE_NODE_PREFIX)?.parse().ok()
}

/// Who may change the cluster's znodes when brokers create them with ACLs (Kafka's
/// `zookeeper.set.acl`): this broker (`own`, its certificate's name) and every `User:`
/// principal of `super.users`, by name (the keeper's `x509` ids), `own` first and none
/// twice. Everyone else may only read them.
pub fn znode_owners(own: &str, super_users: &[String]) -> Vec<String> {
    let mut names = vec![own.to_string()];
    for name in super_users.iter().filter_map(|p| p.strip_prefix("User:")) {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(t: ResourceType, name: &str, p: PatternType) -> ResourcePattern {
        ResourcePattern { resource_type: t, name: name.into(), pattern_type: p }
    }

    fn entry(principal: &str, op: Operation, permission: Permission) -> AccessEntry {
        AccessEntry { principal: principal.into(), host: "*".into(), operation: op, permission }
    }

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const ALICE: Requester<'static> = Requester { user: "alice", host: LOCAL };
    const BOB: Requester<'static> = Requester { user: "bob", host: LOCAL };

    #[test]
    fn nothing_is_allowed_without_an_acl_unless_everyone_is() {
        let acls = AclCache::new();
        let strict = Authorizer::default();
        assert!(!strict.authorize(&acls, &ALICE, Operation::Read, ResourceType::Topic, "t"));
        let open = Authorizer { allow_everyone_if_no_acl_found: true, ..Default::default() };
        assert!(open.authorize(&acls, &ALICE, Operation::Read, ResourceType::Topic, "t"));
        let supers = Authorizer::new(["User:alice"], false);
        assert!(supers.authorize(&acls, &ALICE, Operation::Alter, ResourceType::Cluster, CLUSTER_NAME));
        assert!(!supers.authorize(&acls, &BOB, Operation::Read, ResourceType::Topic, "t"));
    }

    #[test]
    fn an_acl_on_a_resource_closes_it_to_others_even_when_everyone_is_allowed_by_default() {
        let mut acls = AclCache::new();
        acls.set(
            &pattern(ResourceType::Topic, "t", PatternType::Literal),
            vec![entry("User:alice", Operation::Read, Permission::Allow)],
        );
        let open = Authorizer { allow_everyone_if_no_acl_found: true, ..Default::default() };
        assert!(open.authorize(&acls, &ALICE, Operation::Read, ResourceType::Topic, "t"));
        assert!(!open.authorize(&acls, &BOB, Operation::Read, ResourceType::Topic, "t"));
        assert!(!open.authorize(&acls, &ALICE, Operation::Write, ResourceType::Topic, "t"));
        assert!(open.authorize(&acls, &BOB, Operation::Read, ResourceType::Topic, "other"));
    }

    #[test]
    fn read_write_delete_and_alter_imply_describe_and_alter_configs_implies_describe_configs() {
        let a = Authorizer::default();
        for (granted, implied) in [
            (Operation::Read, Operation::Describe),
            (Operation::Write, Operation::Describe),
            (Operation::Delete, Operation::Describe),
            (Operation::Alter, Operation::Describe),
            (Operation::AlterConfigs, Operation::DescribeConfigs),
            (Operation::All, Operation::IdempotentWrite),
        ] {
            let mut acls = AclCache::new();
            acls.set(
                &pattern(ResourceType::Topic, "t", PatternType::Literal),
                vec![entry("User:alice", granted, Permission::Allow)],
            );
            assert!(
                a.authorize(&acls, &ALICE, implied, ResourceType::Topic, "t"),
                "{granted} implies {implied}"
            );
        }
        let mut acls = AclCache::new();
        acls.set(
            &pattern(ResourceType::Topic, "t", PatternType::Literal),
            vec![entry("User:alice", Operation::Describe, Permission::Allow)],
        );
        assert!(
            !a.authorize(&acls, &ALICE, Operation::Read, ResourceType::Topic, "t"),
            "Describe does not imply Read"
        );
    }

    #[test]
    fn prefixed_and_wildcard_patterns_cover_their_names_and_deny_wins() {
        let a = Authorizer::default();
        let mut acls = AclCache::new();
        acls.set(
            &pattern(ResourceType::Topic, "t-", PatternType::Prefixed),
            vec![entry("User:alice", Operation::Write, Permission::Allow)],
        );
        assert!(a.authorize(&acls, &ALICE, Operation::Write, ResourceType::Topic, "t-1"));
        assert!(a.authorize(&acls, &ALICE, Operation::Write, ResourceType::Topic, "t-"));
        assert!(!a.authorize(&acls, &ALICE, Operation::Write, ResourceType::Topic, "t"));
        assert!(!a.authorize(&acls, &ALICE, Operation::Write, ResourceType::Topic, "u-1"));
        assert!(!a.authorize(&acls, &ALICE, Operation::Write, ResourceType::Group, "t-1"), "types are apart");
        acls.set(
            &pattern(ResourceType::Topic, "t-secret", PatternType::Literal),
            vec![entry("User:alice", Operation::All, Permission::Deny)],
        );
        assert!(!a.authorize(&acls, &ALICE, Operation::Write, ResourceType::Topic, "t-secret"));
        assert!(a.authorize(&acls, &ALICE, Operation::Write, ResourceType::Topic, "t-open"));
        acls.set(
            &pattern(ResourceType::Group, WILDCARD, PatternType::Literal),
            vec![entry(WILDCARD_PRINCIPAL, Operation::Read, Permission::Allow)],
        );
        assert!(a.authorize(&acls, &BOB, Operation::Read, ResourceType::Group, "any"));
        // Removing a prefixed pattern forgets it.
        acls.set(&pattern(ResourceType::Topic, "t-", PatternType::Prefixed), Vec::new());
        assert!(!a.authorize(&acls, &ALICE, Operation::Write, ResourceType::Topic, "t-1"));
    }

    #[test]
    fn refusals_carry_kafkas_code_for_the_resource_type() {
        let codes: Vec<i16> =
            ResourceType::ALL.iter().map(|t| refusal(&ALICE, Operation::Read, *t, "x").code()).collect();
        assert_eq!(codes, [29, 30, 31, 53]);
        let e = refusal(&ALICE, Operation::Write, ResourceType::Topic, "t").to_string();
        assert!(e.starts_with("User:alice is not authorized to Write topic t"), "{e}");
    }

    #[test]
    fn hosts_must_match_unless_the_acl_says_any() {
        let a = Authorizer::default();
        let mut acls = AclCache::new();
        let mut e = entry("User:alice", Operation::Read, Permission::Allow);
        e.host = "10.0.0.1".into();
        acls.set(&pattern(ResourceType::Topic, "t", PatternType::Literal), vec![e]);
        assert!(!a.authorize(&acls, &ALICE, Operation::Read, ResourceType::Topic, "t"));
        let there = Requester { user: "alice", host: IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)) };
        assert!(a.authorize(&acls, &there, Operation::Read, ResourceType::Topic, "t"));
    }

    #[test]
    fn a_write_on_some_topic_makes_an_idempotent_producer_unless_denied_there() {
        let a = Authorizer::default();
        let mut acls = AclCache::new();
        assert!(!a.authorize_any(&acls, &ALICE, Operation::Write, ResourceType::Topic));
        acls.set(
            &pattern(ResourceType::Topic, "t-", PatternType::Prefixed),
            vec![entry("User:alice", Operation::Write, Permission::Allow)],
        );
        assert!(a.authorize_any(&acls, &ALICE, Operation::Write, ResourceType::Topic));
        assert!(!a.authorize_any(&acls, &BOB, Operation::Write, ResourceType::Topic));
        acls.set(
            &pattern(ResourceType::Topic, "t", PatternType::Prefixed),
            vec![entry("User:alice", Operation::Write, Permission::Deny)],
        );
        assert!(!a.authorize_any(&acls, &ALICE, Operation::Write, ResourceType::Topic));
    }

    #[test]
    fn filters_match_as_describe_and_delete_acls_do() {
        let mut acls = AclCache::new();
        acls.set(
            &pattern(ResourceType::Topic, "t-", PatternType::Prefixed),
            vec![entry("User:alice", Operation::Write, Permission::Allow)],
        );
        acls.set(
            &pattern(ResourceType::Topic, "t-1", PatternType::Literal),
            vec![entry("User:bob", Operation::Read, Permission::Allow)],
        );
        acls.set(
            &pattern(ResourceType::Group, "g", PatternType::Literal),
            vec![entry("User:bob", Operation::Read, Permission::Allow)],
        );
        assert_eq!(acls.matching(&AclFilter::any()).len(), 3);
        let by_name = AclFilter { name: Some("t-1".into()), ..AclFilter::any() };
        assert_eq!(acls.matching(&by_name).len(), 1);
        let matching = AclFilter {
            name: Some("t-1".into()),
            pattern: PatternFilter::Match,
            resource_type: Some(ResourceType::Topic),
            ..AclFilter::any()
        };
        assert_eq!(acls.matching(&matching).len(), 2);
        let bobs = AclFilter { principal: Some("User:bob".into()), ..AclFilter::any() };
        assert_eq!(acls.matching(&bobs).len(), 2);
        let prefixed = AclFilter { pattern: PatternFilter::Only(PatternType::Prefixed), ..AclFilter::any() };
        assert_eq!(acls.matching(&prefixed).len(), 1);
        assert_eq!(acls.len(), 3);
    }

    #[test]
    fn adding_is_idempotent_and_removing_takes_what_the_filter_matches() {
        let a = entry("User:a", Operation::Read, Permission::Allow);
        let b = entry("User:b", Operation::Write, Permission::Deny);
        assert_eq!(with_added(std::slice::from_ref(&a), std::slice::from_ref(&a)), None);
        assert_eq!(
            with_added(std::slice::from_ref(&a), &[b.clone(), b.clone()]),
            Some(vec![a.clone(), b.clone()])
        );
        let f = AclFilter { permission: Some(Permission::Deny), ..AclFilter::any() };
        assert_eq!(without(&[a.clone(), b.clone()], &f), (vec![a], vec![b]));
    }

    #[test]
    fn znodes_hold_what_kafka_writes() {
        let entries = vec![entry("User:alice", Operation::ClusterAction, Permission::Allow)];
        let json = encode_acls(&entries);
        assert_eq!(
            std::str::from_utf8(&json).ok(),
            Some(
                r#"{"version":1,"acls":[{"principal":"User:alice","permissionType":"Allow","operation":"ClusterAction","host":"*"}]}"#
            )
        );
        assert_eq!(decode_acls("/kafka-acl/Topic/t", &json), Ok(entries));
        assert!(decode_acls("/kafka-acl/Topic/t", br#"{"version":1,"acls":[{"principal":"User:a","permissionType":"Maybe","operation":"Read","host":"*"}]}"#).is_err());
        let p = pattern(ResourceType::Topic, "t-", PatternType::Prefixed);
        assert_eq!(acl_path(&p), "/kafka-acl-extended/prefixed/Topic/t-");
        assert_eq!(decode_change("/x", PatternType::Prefixed, &encode_change(&p)), Ok(p));
        let l = pattern(ResourceType::Group, "g:1", PatternType::Literal);
        assert_eq!(encode_change(&l), b"Group:g:1");
        assert_eq!(decode_change("/x", PatternType::Literal, &encode_change(&l)), Ok(l));
        assert_eq!(change_sequence("acl_changes_0000000007"), Some(7));
        assert_eq!(java_name("ClusterAction"), "CLUSTER_ACTION");
        assert_eq!(java_name("LITERAL"), "LITERAL");
        assert_eq!(
            AccessEntry {
                principal: "User:a".into(),
                host: "*".into(),
                operation: Operation::IdempotentWrite,
                permission: Permission::Allow
            }
            .to_string(),
            "(principal=User:a, host=*, operation=IDEMPOTENT_WRITE, permissionType=ALLOW)"
        );
        assert_eq!(
            pattern(ResourceType::TransactionalId, "x", PatternType::Literal).to_string(),
            "ResourcePattern(resourceType=TRANSACTIONAL_ID, name=x, patternType=LITERAL)"
        );
        assert_eq!("cluster_action".parse::<Operation>(), Ok(Operation::ClusterAction));
        assert!("Fly".parse::<Operation>().err().is_some_and(|e| e.contains("IdempotentWrite")));
    }

    #[test]
    fn bindings_that_cannot_be_are_refused() {
        let ok = AclBinding {
            pattern: pattern(ResourceType::Cluster, CLUSTER_NAME, PatternType::Literal),
            entry: entry("User:a", Operation::Alter, Permission::Allow),
        };
        assert_eq!(check_binding(&ok), Ok(()));
        let mut bad = ok.clone();
        bad.pattern.name = "mine".into();
        assert!(check_binding(&bad).is_err());
        let mut bad = ok.clone();
        bad.entry.principal = "alice".into();
        assert!(check_binding(&bad).err().is_some_and(|e| e.contains("User:<name>")));
    }

    #[test]
    fn znodes_belong_to_the_broker_and_the_super_users() {
        let supers = ["User:broker-1".to_string(), "User:admin".into(), "Group:ops".into()];
        assert_eq!(znode_owners("broker-1", &supers), ["broker-1", "admin"]);
        assert_eq!(znode_owners("broker-2", &supers), ["broker-2", "broker-1", "admin"]);
        assert_eq!(znode_owners("b", &[]), ["b"]);
    }
}
