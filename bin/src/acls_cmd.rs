//! `sluice acls` (kafka-acls.sh): add, remove and list the brokers' ACLs, with Kafka's flags
//! and Kafka's output lines.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context, Result};
use sluice_client::broker::proto::acl::{
    AccessEntry, AclBinding, AclFilter, Operation, PatternFilter, PatternType, Permission, ResourcePattern,
    ResourceType, CLUSTER_NAME, WILDCARD,
};
use sluice_client::broker::Admin;

use crate::client_args::ClientArgs;

/// Arguments of `sluice acls`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["add", "remove", "list"])))]
pub struct AclsArgs {
    /// Add the ACLs the other flags describe.
    #[arg(long)]
    pub add: bool,
    /// Remove the ACLs the other flags describe (asks first, unless --force).
    #[arg(long)]
    pub remove: bool,
    /// List ACLs: of the resources given, else every one.
    #[arg(long)]
    pub list: bool,
    /// Allow this principal (User:<name>; repeatable). The name is the certificate's first
    /// DNS name, else its CN; User:* is everyone.
    #[arg(long, value_name = "PRINCIPAL")]
    pub allow_principal: Vec<String>,
    /// Deny this principal (repeatable). A Deny wins over any Allow.
    #[arg(long, value_name = "PRINCIPAL")]
    pub deny_principal: Vec<String>,
    /// The host of --allow-principal's ACLs (repeatable) [default: * when a principal is
    /// allowed].
    #[arg(long, value_name = "HOST")]
    pub allow_host: Vec<String>,
    /// The host of --deny-principal's ACLs (repeatable) [default: * when a principal is
    /// denied].
    #[arg(long, value_name = "HOST")]
    pub deny_host: Vec<String>,
    /// An operation (repeatable): Read, Write, Create, Delete, Alter, Describe,
    /// ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, All [default: All].
    #[arg(long, value_name = "OPERATION")]
    pub operation: Vec<String>,
    /// A topic (repeatable; * is every topic).
    #[arg(long, value_name = "TOPIC")]
    pub topic: Vec<String>,
    /// A consumer group (repeatable; * is every group).
    #[arg(long, value_name = "GROUP")]
    pub group: Vec<String>,
    /// The cluster.
    #[arg(long)]
    pub cluster: bool,
    /// A transactional id (repeatable).
    #[arg(long, value_name = "ID")]
    pub transactional_id: Vec<String>,
    /// How the names match: LITERAL or PREFIXED; with --list or --remove also ANY or MATCH
    /// (every ACL that applies to the name) [default: LITERAL; ANY for --list].
    #[arg(long, value_name = "TYPE")]
    pub resource_pattern_type: Option<String>,
    /// The producer's ACLs: Write, Describe and Create on the --topic(s) (and
    /// IdempotentWrite on the cluster with --idempotent).
    #[arg(long)]
    pub producer: bool,
    /// With --producer: IdempotentWrite on the cluster too.
    #[arg(long, requires = "producer")]
    pub idempotent: bool,
    /// The consumer's ACLs: Read and Describe on the --topic(s), Read on the --group(s).
    #[arg(long)]
    pub consumer: bool,
    /// With --list: only this principal's ACLs.
    #[arg(long, value_name = "PRINCIPAL")]
    pub principal: Vec<String>,
    /// Remove without asking.
    #[arg(long)]
    pub force: bool,
    /// Where the cluster is and this client's credentials.
    #[command(flatten)]
    pub client: ClientArgs,
}

fn parse_principal(p: &str) -> Result<String> {
    match p.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(p.to_string()),
        _ => bail!("{p:?} is not a principal: write User:<name> (the certificate's first DNS name, else its CN), or User:*"),
    }
}

impl AclsArgs {
    /// The resource names given, with their types and the pattern type.
    fn patterns(&self, pattern_type: PatternType) -> Vec<ResourcePattern> {
        let mut out = Vec::new();
        let mut push = |t: ResourceType, names: &[String]| {
            for n in names {
                out.push(ResourcePattern { resource_type: t, name: n.clone(), pattern_type });
            }
        };
        push(ResourceType::Topic, &self.topic);
        push(ResourceType::Group, &self.group);
        push(ResourceType::TransactionalId, &self.transactional_id);
        if self.cluster {
            push(ResourceType::Cluster, &[CLUSTER_NAME.to_string()]);
        }
        out
    }

    fn operations(&self) -> Result<Vec<Operation>> {
        if self.operation.is_empty() {
            return Ok(vec![Operation::All]);
        }
        self.operation.iter().map(|o| o.parse::<Operation>().map_err(anyhow::Error::msg)).collect()
    }

    /// The entries for the principals given: (principal, host, permission).
    fn who(&self) -> Result<Vec<(String, String, Permission)>> {
        let mut out = Vec::new();
        for (principals, hosts, permission) in [
            (&self.allow_principal, &self.allow_host, Permission::Allow),
            (&self.deny_principal, &self.deny_host, Permission::Deny),
        ] {
            let hosts = if hosts.is_empty() { vec![WILDCARD.to_string()] } else { hosts.clone() };
            for p in principals {
                let p = parse_principal(p)?;
                for h in &hosts {
                    out.push((p.clone(), h.clone(), permission));
                }
            }
        }
        Ok(out)
    }

    /// The ACLs `--add` (or a literal `--remove`) means, per pattern.
    fn bindings(&self, pattern_type: PatternType) -> Result<BTreeMap<ResourcePattern, Vec<AccessEntry>>> {
        let who = self.who()?;
        if who.is_empty() {
            bail!("give --allow-principal or --deny-principal (User:<name>)");
        }
        let mut out: BTreeMap<ResourcePattern, Vec<AccessEntry>> = BTreeMap::new();
        let mut add = |pattern: ResourcePattern, ops: &[Operation]| {
            let entries = out.entry(pattern).or_default();
            for (principal, host, permission) in &who {
                for &operation in ops {
                    let e = AccessEntry {
                        principal: principal.clone(),
                        host: host.clone(),
                        operation,
                        permission: *permission,
                    };
                    if !entries.contains(&e) {
                        entries.push(e);
                    }
                }
            }
        };
        if self.producer || self.consumer {
            if self.topic.is_empty() {
                bail!("--producer and --consumer need --topic");
            }
            if self.consumer && self.group.is_empty() {
                bail!("--consumer needs --group (the consumer group to read in)");
            }
            for p in self.patterns(pattern_type) {
                match p.resource_type {
                    ResourceType::Topic => {
                        let mut ops = Vec::new();
                        if self.producer {
                            ops.extend([Operation::Write, Operation::Describe, Operation::Create]);
                        }
                        if self.consumer {
                            ops.extend([Operation::Read, Operation::Describe]);
                        }
                        ops.dedup();
                        add(p, &ops);
                    }
                    ResourceType::Group if self.consumer => add(p, &[Operation::Read]),
                    _ => {}
                }
            }
            if self.producer && self.idempotent {
                let cluster = ResourcePattern {
                    resource_type: ResourceType::Cluster,
                    name: CLUSTER_NAME.into(),
                    pattern_type: PatternType::Literal,
                };
                add(cluster, &[Operation::IdempotentWrite]);
            }
            return Ok(out);
        }
        let ops = self.operations()?;
        let patterns = self.patterns(pattern_type);
        if patterns.is_empty() {
            bail!("give the resource: --topic, --group, --cluster or --transactional-id");
        }
        for p in patterns {
            if let Some(op) = ops.iter().find(|o| !p.resource_type.operations().contains(o)) {
                let allowed: Vec<&str> = p.resource_type.operations().iter().map(|o| o.name()).collect();
                bail!("{op} is not an operation on a {}: use one of {}", p.resource_type, allowed.join(", "));
            }
            add(p, &ops);
        }
        Ok(out)
    }
}

fn print_acls(title: &str, pattern: &ResourcePattern, entries: &[AccessEntry]) {
    println!("{title} for resource `{pattern}`: ");
    for e in entries {
        println!(" \t{e} ");
    }
    println!();
}

fn pattern_filter(text: Option<&str>, default: PatternFilter) -> Result<PatternFilter> {
    match text.map(str::to_ascii_uppercase).as_deref() {
        None => Ok(default),
        Some("ANY") => Ok(PatternFilter::Any),
        Some("MATCH") => Ok(PatternFilter::Match),
        Some(other) => other.parse::<PatternType>().map(PatternFilter::Only).map_err(|_| {
            anyhow::anyhow!("--resource-pattern-type {other}: give LITERAL, PREFIXED, ANY or MATCH")
        }),
    }
}

fn confirm(what: &str) -> Result<bool> {
    print!("Are you sure you want to remove ACLs: \n{what}\n (y/n)");
    std::io::stdout().flush().ok();
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        println!();
        bail!("--remove asks before removing and stdin is not a terminal: add --force");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line).context("reading the answer")?;
    Ok(line.trim().eq_ignore_ascii_case("y"))
}

/// Runs `sluice acls`.
pub fn run(args: AclsArgs) -> Result<()> {
    let config = args.client.client_config()?;
    let rt = crate::client_args::runtime()?;
    rt.block_on(async {
        let admin = Admin::new(config)?;
        if args.add {
            let pattern_type = match pattern_filter(
                args.resource_pattern_type.as_deref(),
                PatternFilter::Only(PatternType::Literal),
            )? {
                PatternFilter::Only(t) => t,
                _ => bail!("--add needs --resource-pattern-type LITERAL or PREFIXED"),
            };
            let bindings = args.bindings(pattern_type)?;
            let mut all = Vec::new();
            for (pattern, entries) in &bindings {
                print_acls("Adding ACLs", pattern, entries);
                all.extend(entries.iter().map(|e| AclBinding { pattern: pattern.clone(), entry: e.clone() }));
            }
            let results = admin.create_acls(all.clone()).await?;
            let failed: Vec<_> =
                all.iter().zip(&results).filter_map(|(b, r)| r.as_ref().err().map(|e| (b, e))).collect();
            for (b, e) in &failed {
                eprintln!("Error while adding ACL {} on {}: {e}", b.entry, b.pattern);
            }
            if !failed.is_empty() {
                bail!("{} of {} ACL(s) could not be added (see above)", failed.len(), all.len());
            }
            // Each broker's copy follows the keeper by watch: wait (a little) until the one
            // asked shows what was added, so the listing below includes it.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                let mut seen = true;
                for (pattern, entries) in &bindings {
                    let have = admin.describe_acls(filter_of(pattern.clone())).await?;
                    seen &= entries.iter().all(|e| have.iter().any(|b| b.entry == *e));
                }
                if seen || std::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            list(&admin, bindings.keys().map(|p| filter_of(p.clone())).collect()).await
        } else if args.remove {
            let pattern = pattern_filter(
                args.resource_pattern_type.as_deref(),
                PatternFilter::Only(PatternType::Literal),
            )?;
            let filters = remove_filters(&args, pattern)?;
            if !args.force {
                let described: Vec<String> = filters.iter().map(|f| format!("{f:?}")).collect();
                if !confirm(&described.join("\n"))? {
                    return Ok(());
                }
            }
            let results = admin.delete_acls(filters).await?;
            let mut by_pattern: BTreeMap<ResourcePattern, Vec<AccessEntry>> = BTreeMap::new();
            let mut failed = 0;
            for r in results {
                match r {
                    Ok(removed) => {
                        for b in removed {
                            by_pattern.entry(b.pattern).or_default().push(b.entry);
                        }
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("Error while removing ACLs: {e}");
                    }
                }
            }
            for (pattern, entries) in &by_pattern {
                print_acls("Removing ACLs", pattern, entries);
            }
            if failed > 0 {
                bail!("{failed} removal(s) failed (see above)");
            }
            Ok(())
        } else {
            let pattern = pattern_filter(args.resource_pattern_type.as_deref(), PatternFilter::Any)?;
            let mut filters: Vec<AclFilter> = args
                .patterns(PatternType::Literal)
                .into_iter()
                .map(|p| AclFilter {
                    resource_type: Some(p.resource_type),
                    name: Some(p.name),
                    pattern,
                    ..AclFilter::any()
                })
                .collect();
            if filters.is_empty() {
                filters.push(AclFilter { pattern, ..AclFilter::any() });
            }
            let principals: Vec<String> =
                args.principal.iter().map(|p| parse_principal(p)).collect::<Result<_>>()?;
            if !principals.is_empty() {
                filters = filters
                    .into_iter()
                    .flat_map(|f| {
                        principals.iter().map(move |p| AclFilter { principal: Some(p.clone()), ..f.clone() })
                    })
                    .collect();
            }
            list(&admin, filters).await
        }
    })
}

fn filter_of(p: ResourcePattern) -> AclFilter {
    AclFilter {
        resource_type: Some(p.resource_type),
        name: Some(p.name),
        pattern: PatternFilter::Only(p.pattern_type),
        ..AclFilter::any()
    }
}

/// `--remove`: the exact ACLs when principals are given, else every ACL on the resources
/// (narrowed by --operation when given).
fn remove_filters(args: &AclsArgs, pattern: PatternFilter) -> Result<Vec<AclFilter>> {
    let literal_type = match pattern {
        PatternFilter::Only(t) => t,
        _ => PatternType::Literal,
    };
    if !args.allow_principal.is_empty() || !args.deny_principal.is_empty() {
        let bindings = args.bindings(literal_type)?;
        return Ok(bindings
            .into_iter()
            .flat_map(|(p, entries)| {
                entries.into_iter().map(move |e| AclFilter {
                    principal: Some(e.principal),
                    host: Some(e.host),
                    operation: Some(e.operation),
                    permission: Some(e.permission),
                    ..AclFilter { pattern, ..filter_of(p.clone()) }
                })
            })
            .collect());
    }
    let patterns = args.patterns(literal_type);
    if patterns.is_empty() {
        bail!("give the resource: --topic, --group, --cluster or --transactional-id");
    }
    let ops: Vec<Option<Operation>> = if args.operation.is_empty() {
        vec![None]
    } else {
        args.operations()?.into_iter().map(Some).collect()
    };
    Ok(patterns
        .into_iter()
        .flat_map(|p| ops.iter().map(move |op| AclFilter { operation: *op, pattern, ..filter_of(p.clone()) }))
        .collect())
}

/// Prints `Current ACLs for resource ...` for what each filter takes.
async fn list(admin: &Admin, filters: Vec<AclFilter>) -> Result<()> {
    let mut by_pattern: BTreeMap<ResourcePattern, Vec<AccessEntry>> = BTreeMap::new();
    for f in filters {
        for b in admin.describe_acls(f).await? {
            let entries = by_pattern.entry(b.pattern).or_default();
            if !entries.contains(&b.entry) {
                entries.push(b.entry);
            }
        }
    }
    for (pattern, entries) in &by_pattern {
        print_acls("Current ACLs", pattern, entries);
    }
    Ok(())
}
