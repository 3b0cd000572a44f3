//! `sluice consumer-groups`: kafka-consumer-groups.sh — list, describe and delete consumer
//! groups and reset their committed offsets, with Kafka's arguments and output.
//!
//! - `--list` prints one group id per line; `--list --state [STATES]` a `GROUP STATE` table
//!   (only the groups in the comma-separated STATES, if given).
//! - `--describe --group G` (repeatable) or `--all-groups` prints, per group, a blank line
//!   and Kafka's offsets table:
//!
//!   ```text
//!
//!   GROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             CONSUMER-ID     HOST            CLIENT-ID
//!   g               orders          0          17              50              33              -               -               -
//!   ```
//!
//!   one row per partition the group has a committed offset for or a member is assigned:
//!   the assigned partitions first (members with more partitions first), then the others,
//!   each part by topic and partition. `-` marks what is unknown or absent: no committed
//!   offset, no log end offset (the partition is gone or has no leader), so no lag; no
//!   member. LAG is LOG-END-OFFSET − CURRENT-OFFSET. With `--verbose` a LEADER-EPOCH column
//!   (of the committed offset) follows PARTITION.
//!   `--members` prints `GROUP CONSUMER-ID HOST CLIENT-ID #PARTITIONS` (`--verbose` adds
//!   `ASSIGNMENT`, e.g. `orders(0,1), audit(2)`); `--state` prints
//!   `GROUP COORDINATOR (ID) ASSIGNMENT-STRATEGY STATE #MEMBERS`.
//!   As Kafka does, `Consumer group 'G' has no active members.` (state Empty) and
//!   `Warning: Consumer group 'G' is rebalancing.` go to stderr before the table. A group
//!   the coordinator does not know (state Dead) without committed offsets is reported as
//!   `Consumer group 'G' does not exist.` and the exit status is non-zero.
//! - `--reset-offsets --group G (--topic T[:P,P...] ... | --all-topics)` with exactly one
//!   of `--to-earliest`, `--to-latest`, `--to-offset N`, `--to-datetime
//!   YYYY-MM-DDTHH:mm:SS.sss`, `--shift-by N` prints `GROUP TOPIC PARTITION NEW-OFFSET`;
//!   only with `--execute` are the offsets committed. `--to-offset` and `--shift-by` are
//!   moved into [log start, log end] as Kafka does; `--to-datetime` takes the first record
//!   at or after the time, or the log end where there is none. A group with members is
//!   refused: `Assignments can only be reset if the group 'G' is inactive, but the current
//!   state is Stable.`
//! - `--delete --group G` prints `Deletion of requested consumer groups ('G') was
//!   successful.`; a group with members (or unknown) is reported as Kafka does, `Deletion of
//!   some consumer groups failed:` and `* Group 'G' could not be deleted due to: ...`, and
//!   the exit status is non-zero.
//!
//! Unlike Kafka, which prints its errors on stdout and mostly exits 0, errors go to stderr
//! and make the exit status non-zero. Trailing spaces of padded lines are not printed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use sluice_client::broker::assignor::Assignment;
use sluice_client::broker::proto::{
    BrokerEndpoint, BrokerError, CommitOffset, CommittedOffset, FindCoordinator, GroupDescription,
    MemberDescription,
};
use sluice_client::broker::{Admin, ClientConfig, ClusterError, Consumer, ConsumerConfig, TopicPartition};

use crate::client_args::ClientArgs;

/// Arguments of `sluice consumer-groups`.
#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("action").required(true).args(["list", "describe", "delete", "reset_offsets"])
))]
pub struct GroupsArgs {
    /// List every consumer group, one id per line (with --state: a GROUP STATE table).
    #[arg(long)]
    pub list: bool,
    /// Describe groups (needs --group or --all-groups). By default the offsets view: per
    /// partition the committed offset (CURRENT-OFFSET), the log end offset, the lag between
    /// them and the member it is assigned to; --members or --state for the other views.
    #[arg(long)]
    pub describe: bool,
    /// Delete groups and their committed offsets (needs --group or --all-groups); only
    /// groups without active members can be deleted.
    #[arg(long)]
    pub delete: bool,
    /// Reset groups' committed offsets (needs --group or --all-groups, --topic or
    /// --all-topics, and one of --to-earliest, --to-latest, --to-offset, --to-datetime,
    /// --shift-by). Prints the new offsets and changes nothing unless --execute is given.
    /// Only groups without active members can be reset.
    #[arg(long)]
    pub reset_offsets: bool,
    /// The consumer group (repeat for more).
    #[arg(long, value_name = "GROUP")]
    pub group: Vec<String>,
    /// Every consumer group (for --describe, --delete and --reset-offsets).
    #[arg(long, conflicts_with = "group")]
    pub all_groups: bool,
    /// With --describe: the members view: GROUP CONSUMER-ID HOST CLIENT-ID #PARTITIONS
    /// (with --verbose also ASSIGNMENT, the partitions of each member).
    #[arg(long)]
    pub members: bool,
    /// With --describe: the offsets view (the default): GROUP TOPIC PARTITION
    /// CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID.
    #[arg(long)]
    pub offsets: bool,
    /// With --describe: the state view: GROUP COORDINATOR (ID) ASSIGNMENT-STRATEGY STATE
    /// #MEMBERS. With --list: a GROUP STATE table, only the groups in STATES if given
    /// (comma-separated: Empty, PreparingRebalance, CompletingRebalance, Stable).
    #[arg(long, value_name = "STATES", num_args = 0..=1, default_missing_value = "")]
    pub state: Option<String>,
    /// With --describe: more detail: ASSIGNMENT in the members view, LEADER-EPOCH (of the
    /// committed offset) in the offsets view.
    #[arg(long)]
    pub verbose: bool,
    /// With --reset-offsets: a topic whose offsets to reset, every partition (TOPIC) or some
    /// (TOPIC:P[,P...], e.g. orders:0,2). Repeatable. An exact name, not a regular
    /// expression.
    #[arg(long, value_name = "TOPIC[:P,...]")]
    pub topic: Vec<String>,
    /// With --reset-offsets: every partition the group has a committed offset for.
    #[arg(long, conflicts_with = "topic")]
    pub all_topics: bool,
    /// Reset to each partition's log start offset (its oldest record still kept).
    #[arg(long)]
    pub to_earliest: bool,
    /// Reset to each partition's log end offset (skipping every record produced so far).
    #[arg(long)]
    pub to_latest: bool,
    /// Reset to this offset; one below the log start or past the log end is moved to it.
    #[arg(long, value_name = "OFFSET", allow_negative_numbers = true)]
    pub to_offset: Option<i64>,
    /// Reset to the first record whose timestamp is at or after this time,
    /// YYYY-MM-DDTHH:mm:SS.sss in UTC (a trailing Z, or an offset such as +02:00, is
    /// accepted); the log end offset where there is no such record.
    #[arg(long, value_name = "YYYY-MM-DDTHH:mm:SS.sss")]
    pub to_datetime: Option<String>,
    /// Move each committed offset by N (negative: back); a result below the log start or
    /// past the log end is moved to it. Every partition reset needs a committed offset.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub shift_by: Option<i64>,
    /// With --reset-offsets: only print the new offsets (the default).
    #[arg(long, conflicts_with = "execute")]
    pub dry_run: bool,
    /// With --reset-offsets: commit the new offsets.
    #[arg(long)]
    pub execute: bool,
    /// Where the cluster is and this client's credentials.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Where `--reset-offsets` moves the offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    /// The log start.
    Earliest,
    /// The log end.
    Latest,
    /// This offset, within [log start, log end].
    Offset(i64),
    /// The first record at or after this time (ms since the epoch), else the log end.
    Datetime(i64),
    /// The committed offset moved by this much, within [log start, log end].
    ShiftBy(i64),
}

/// The `--describe` views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Offsets,
    Members,
    State,
}

/// Runs `sluice consumer-groups`.
pub fn run(args: GroupsArgs) -> Result<()> {
    check_combinations(&args)?;
    let reset_to = if args.reset_offsets { Some(reset_scenario(&args)?) } else { None };
    let topics = args.topic.iter().map(|t| parse_topic_arg(t)).collect::<Result<Vec<_>>>()?;
    let config = args.client.client_config()?;
    let rt = crate::client_args::runtime()?;
    rt.block_on(async {
        let ctx = Ctx::new(config)?;
        if args.list {
            return list(&ctx, args.state.as_deref()).await;
        }
        let groups = if args.all_groups {
            ctx.admin.list_groups().await?.into_iter().map(|g| g.group_id).collect()
        } else {
            let set: BTreeSet<String> = args.group.iter().cloned().collect();
            set.into_iter().collect::<Vec<_>>()
        };
        if args.describe {
            let view = if args.members {
                View::Members
            } else if args.state.is_some() {
                View::State
            } else {
                View::Offsets
            };
            describe(&ctx, &groups, view, args.verbose).await
        } else if args.delete {
            delete(&ctx, groups).await
        } else {
            let scope = if args.all_topics { Scope::AllTopics } else { Scope::Topics(topics) };
            let to = reset_to.ok_or_else(|| anyhow!("--reset-offsets needs a scenario"))?;
            reset(&ctx, &groups, &scope, to, args.execute).await
        }
    })
}

/// The flag combinations Kafka refuses, each with what to do instead.
fn check_combinations(args: &GroupsArgs) -> Result<()> {
    let action = if args.list {
        "--list"
    } else if args.describe {
        "--describe"
    } else if args.delete {
        "--delete"
    } else {
        "--reset-offsets"
    };
    let names_groups = !args.group.is_empty() || args.all_groups;
    if args.list && names_groups {
        bail!("--group and --all-groups go with --describe, --delete or --reset-offsets (--list lists every group)");
    }
    if !args.list && !names_groups {
        bail!("{action} needs --group GROUP (repeatable) or --all-groups (`sluice consumer-groups --list` lists the groups)");
    }
    let describe_only =
        [("--members", args.members), ("--offsets", args.offsets), ("--verbose", args.verbose)];
    if let Some((flag, _)) = describe_only.iter().find(|(_, given)| *given).filter(|_| !args.describe) {
        bail!("{flag} goes with --describe");
    }
    if args.describe {
        let views = [args.members, args.offsets, args.state.is_some()].iter().filter(|&&v| v).count();
        if views > 1 {
            bail!("--describe takes at most one of --members, --offsets and --state");
        }
        if args.state.as_deref().is_some_and(|s| !s.is_empty()) {
            bail!("--describe --state takes no states (a list of states filters --list --state STATES)");
        }
    }
    if args.state.is_some() && !(args.describe || args.list) {
        bail!("--state goes with --describe or --list");
    }
    let reset_only = [
        ("--topic", !args.topic.is_empty()),
        ("--all-topics", args.all_topics),
        ("--to-earliest", args.to_earliest),
        ("--to-latest", args.to_latest),
        ("--to-offset", args.to_offset.is_some()),
        ("--to-datetime", args.to_datetime.is_some()),
        ("--shift-by", args.shift_by.is_some()),
        ("--dry-run", args.dry_run),
        ("--execute", args.execute),
    ];
    if let Some((flag, _)) = reset_only.iter().find(|(_, given)| *given).filter(|_| !args.reset_offsets) {
        bail!("{flag} goes with --reset-offsets");
    }
    if args.reset_offsets && args.topic.is_empty() && !args.all_topics {
        bail!(
            "--reset-offsets needs --topic TOPIC[:P,P...] (repeatable) or --all-topics (every partition \
             the group has a committed offset for)"
        );
    }
    Ok(())
}

const SCENARIOS: &str =
    "--to-earliest, --to-latest, --to-offset N, --to-datetime YYYY-MM-DDTHH:mm:SS.sss or --shift-by N";

/// The one reset scenario given.
fn reset_scenario(args: &GroupsArgs) -> Result<ResetTo> {
    let mut given = Vec::new();
    if args.to_earliest {
        given.push(ResetTo::Earliest);
    }
    if args.to_latest {
        given.push(ResetTo::Latest);
    }
    if let Some(o) = args.to_offset {
        given.push(ResetTo::Offset(o));
    }
    if let Some(text) = &args.to_datetime {
        given.push(ResetTo::Datetime(parse_datetime(text)?));
    }
    if let Some(n) = args.shift_by {
        given.push(ResetTo::ShiftBy(n));
    }
    match given.as_slice() {
        [one] => Ok(*one),
        [] => bail!("--reset-offsets needs one of {SCENARIOS}"),
        _ => bail!("--reset-offsets takes only one of {SCENARIOS}"),
    }
}

/// `--to-datetime`: `YYYY-MM-DDTHH:mm:SS[.sss]` in UTC, optionally ended by `Z` or an
/// offset `±HH:MM`; milliseconds since the epoch.
pub fn parse_datetime(text: &str) -> Result<i64> {
    let bad = |why: &str| {
        anyhow!(
            "--to-datetime {text:?}: {why}; expected YYYY-MM-DDTHH:mm:SS.sss in UTC, e.g. \
             2024-05-01T13:30:00.000 (a trailing Z or an offset such as +02:00 may follow)"
        )
    };
    let t = text.trim();
    let (date, rest) = t.split_once(['T', 't']).ok_or_else(|| bad("no T between the date and the time"))?;
    // The zone: Z, ±HH:MM, or nothing (UTC).
    let (time, offset_secs) = if let Some(time) = rest.strip_suffix(['Z', 'z']) {
        (time, 0)
    } else if let Some(at) = rest.rfind(['+', '-']) {
        let (time, zone) = rest.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone[1..].split_once(':').ok_or_else(|| bad("the offset is not ±HH:MM"))?;
        let h: i32 = number(h, 2).ok_or_else(|| bad("the offset is not ±HH:MM"))?;
        let m: i32 = number(m, 2).ok_or_else(|| bad("the offset is not ±HH:MM"))?;
        if h > 23 || m > 59 {
            return Err(bad("the offset is out of range"));
        }
        (time, sign * (h * 3600 + m * 60))
    } else {
        (rest, 0)
    };
    let mut d = date.split('-');
    let (Some(y), Some(mo), Some(day), None) = (d.next(), d.next(), d.next(), d.next()) else {
        return Err(bad("the date is not YYYY-MM-DD"));
    };
    let year: i32 = number(y, 4).ok_or_else(|| bad("the date is not YYYY-MM-DD"))?;
    let month: u8 = number(mo, 2).ok_or_else(|| bad("the date is not YYYY-MM-DD"))?;
    let day: u8 = number(day, 2).ok_or_else(|| bad("the date is not YYYY-MM-DD"))?;
    let (hms, fraction) = match time.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (time, None),
    };
    let mut parts = hms.split(':');
    let (Some(h), Some(mi), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad("the time is not HH:mm:SS"));
    };
    let hour: u8 = number(h, 2).ok_or_else(|| bad("the time is not HH:mm:SS"))?;
    let minute: u8 = number(mi, 2).ok_or_else(|| bad("the time is not HH:mm:SS"))?;
    let second: u8 = number(s, 2).ok_or_else(|| bad("the time is not HH:mm:SS"))?;
    let millis: u16 = match fraction {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let padded = format!("{f:0<3}");
            padded[..3].parse().map_err(|_| bad("the milliseconds are not digits"))?
        }
        Some(_) => return Err(bad("the milliseconds are not digits")),
    };
    let month = time::Month::try_from(month).map_err(|_| bad("no such month"))?;
    let date = time::Date::from_calendar_date(year, month, day).map_err(|_| bad("no such day"))?;
    let time = time::Time::from_hms_milli(hour, minute, second, millis).map_err(|_| bad("no such time"))?;
    let offset = time::UtcOffset::from_whole_seconds(offset_secs).map_err(|_| bad("no such offset"))?;
    let at = time::PrimitiveDateTime::new(date, time).assume_offset(offset);
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).map_err(|_| bad("out of range"))
}

/// Exactly `digits` ASCII digits as a number.
fn number<T: std::str::FromStr>(text: &str, digits: usize) -> Option<T> {
    (text.len() == digits && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok()).flatten()
}

/// A `--topic` argument: a topic (all its partitions) or `TOPIC:P[,P...]`.
pub fn parse_topic_arg(arg: &str) -> Result<(String, Option<Vec<i32>>)> {
    let bad = |why: String| {
        anyhow!("--topic {arg:?}: {why}; expected TOPIC (every partition) or TOPIC:P[,P...], e.g. orders:0,2")
    };
    match arg.split_once(':') {
        None if arg.trim().is_empty() => Err(bad("no topic".into())),
        None => Ok((arg.trim().to_string(), None)),
        Some((topic, partitions)) => {
            if topic.trim().is_empty() {
                return Err(bad("no topic before the colon".into()));
            }
            let mut out = Vec::new();
            for p in partitions.split(',') {
                let n = p
                    .trim()
                    .parse::<i32>()
                    .ok()
                    .filter(|&n| n >= 0)
                    .ok_or_else(|| bad(format!("{p:?} is not a partition number")))?;
                if !out.contains(&n) {
                    out.push(n);
                }
            }
            Ok((topic.trim().to_string(), Some(out)))
        }
    }
}

/// `offset` moved into `[start, end]` (Kafka's reset range check).
pub fn clamp_offset(offset: i64, start: i64, end: i64) -> i64 {
    if offset > end {
        end
    } else if offset < start {
        start
    } else {
        offset
    }
}

/// The offsets known for the partitions being reset.
#[derive(Debug, Default)]
struct Known {
    start: BTreeMap<TopicPartition, i64>,
    end: BTreeMap<TopicPartition, i64>,
    committed: BTreeMap<TopicPartition, i64>,
    /// `--to-datetime`'s lookups: the first offset at or after the time, `None` if no record
    /// is that recent.
    at_time: BTreeMap<TopicPartition, Option<i64>>,
}

/// The new offset of each partition, and warnings for stderr.
fn new_offsets(
    to: ResetTo,
    partitions: &BTreeSet<TopicPartition>,
    known: &Known,
) -> Result<(BTreeMap<TopicPartition, i64>, Vec<String>)> {
    let get = |map: &BTreeMap<TopicPartition, i64>, tp: &TopicPartition, what: &str| {
        map.get(tp).copied().ok_or_else(|| anyhow!("the {what} offset of {tp} could not be read"))
    };
    let mut out = BTreeMap::new();
    let mut warnings = Vec::new();
    for tp in partitions {
        let offset = match to {
            ResetTo::Earliest => get(&known.start, tp, "log start")?,
            ResetTo::Latest => get(&known.end, tp, "log end")?,
            ResetTo::Offset(o) => {
                clamp_offset(o, get(&known.start, tp, "log start")?, get(&known.end, tp, "log end")?)
            }
            ResetTo::ShiftBy(n) => {
                let Some(&current) = known.committed.get(tp) else {
                    bail!(
                        "Cannot shift offset for partition {tp} since there is no current committed offset \
                         (set one first with --to-earliest, --to-latest or --to-offset)"
                    );
                };
                clamp_offset(
                    current.saturating_add(n),
                    get(&known.start, tp, "log start")?,
                    get(&known.end, tp, "log end")?,
                )
            }
            ResetTo::Datetime(_) => match known.at_time.get(tp) {
                Some(Some(o)) => *o,
                Some(None) => {
                    let end = get(&known.end, tp, "log end")?;
                    warnings.push(format!(
                        "Warn: Partition {} from topic {} has no record at or after the time: using its \
                         log end offset {end}.",
                        tp.partition, tp.topic
                    ));
                    end
                }
                None => bail!("the offset by time of {tp} could not be read"),
            },
        };
        out.insert(tp.clone(), offset);
    }
    Ok((out, warnings))
}

/// A text table as Kafka's tools lay them out: each column but the last padded to its width
/// (Kafka's minimum for the column, or the longest value if wider), one space between
/// columns.
#[derive(Debug)]
struct Table {
    headers: Vec<&'static str>,
    min_widths: Vec<usize>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(columns: &[(&'static str, usize)]) -> Self {
        Table {
            headers: columns.iter().map(|c| c.0).collect(),
            min_widths: columns.iter().map(|c| c.1).collect(),
            rows: Vec::new(),
        }
    }

    fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.headers.len());
        self.rows.push(row);
    }

    /// The header line and one line per row, each ending in a newline, without trailing
    /// spaces.
    fn render(&self) -> String {
        let n = self.headers.len();
        let widths: Vec<usize> = (0..n)
            .map(|i| {
                let longest = self.rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
                self.min_widths[i].max(longest).max(self.headers[i].len())
            })
            .collect();
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 < n {
                    line.push_str(&format!("{cell:<w$} ", w = widths[i]));
                } else {
                    line.push_str(cell);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

const MISSING: &str = "-";

fn or_missing<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| MISSING.to_string(), |v| v.to_string())
}

/// A member's assigned partitions (none if its assignment cannot be read).
fn assigned(m: &MemberDescription) -> Vec<TopicPartition> {
    match Assignment::decode(&m.assignment) {
        Ok(a) => a.partitions.into_iter().map(|(t, p)| TopicPartition::new(t, p)).collect(),
        Err(e) => {
            tracing::warn!(member = %m.member_id, error = %e, "cannot read a member's assignment");
            Vec::new()
        }
    }
}

/// The committed offsets that exist (the coordinator answers -1 for none).
fn committed_map(offsets: &[CommittedOffset]) -> BTreeMap<TopicPartition, (i64, i32)> {
    offsets
        .iter()
        .filter(|c| c.offset >= 0)
        .map(|c| (TopicPartition::new(c.topic.clone(), c.partition), (c.offset, c.leader_epoch)))
        .collect()
}

/// The offsets view's rows in Kafka's order: the members' partitions (members with more
/// partitions first, each member's by topic and partition), then the committed partitions no
/// member has (by topic and partition).
fn offset_rows<'a>(
    d: &'a GroupDescription,
    committed: &BTreeMap<TopicPartition, (i64, i32)>,
) -> Vec<(TopicPartition, Option<&'a MemberDescription>)> {
    let mut members: Vec<(&MemberDescription, Vec<TopicPartition>)> = d
        .members
        .iter()
        .map(|m| {
            let mut tps = assigned(m);
            tps.sort();
            tps.dedup();
            (m, tps)
        })
        .filter(|(_, tps)| !tps.is_empty())
        .collect();
    members.sort_by_key(|(_, tps)| std::cmp::Reverse(tps.len()));
    let mut rows = Vec::new();
    let mut seen = BTreeSet::new();
    for (m, tps) in members {
        for tp in tps {
            seen.insert(tp.clone());
            rows.push((tp, Some(m)));
        }
    }
    for tp in committed.keys().filter(|tp| !seen.contains(*tp)) {
        rows.push((tp.clone(), None));
    }
    rows
}

/// LOG-END-OFFSET − CURRENT-OFFSET when both are known, by the coordinator's own rule
/// (`sluice_broker_core::group::lag`, the `sluice_group_lag` series), so the table and the
/// metric never disagree.
pub fn lag(committed: Option<i64>, end: Option<i64>) -> Option<i64> {
    Some(sluice_broker_core::group::lag(end?, committed?))
}

/// Kafka's offsets table for one group.
fn offsets_table(
    group: &str,
    rows: &[(TopicPartition, Option<&MemberDescription>)],
    committed: &BTreeMap<TopicPartition, (i64, i32)>,
    ends: &BTreeMap<TopicPartition, i64>,
    verbose: bool,
) -> Table {
    let mut columns = vec![("GROUP", 15), ("TOPIC", 15), ("PARTITION", 10)];
    if verbose {
        columns.push(("LEADER-EPOCH", 15));
    }
    columns.extend([
        ("CURRENT-OFFSET", 15),
        ("LOG-END-OFFSET", 15),
        ("LAG", 15),
        ("CONSUMER-ID", 15),
        ("HOST", 15),
        ("CLIENT-ID", 0),
    ]);
    let mut table = Table::new(&columns);
    for (tp, member) in rows {
        let current = committed.get(tp).map(|c| c.0);
        let end = ends.get(tp).copied();
        let mut row = vec![group.to_string(), tp.topic.clone(), tp.partition.to_string()];
        if verbose {
            row.push(or_missing(committed.get(tp).map(|c| c.1).filter(|&e| e >= 0)));
        }
        row.extend([
            or_missing(current),
            or_missing(end),
            or_missing(lag(current, end)),
            or_missing(member.map(|m| m.member_id.clone())),
            or_missing(member.map(|m| m.client_host.clone())),
            or_missing(member.map(|m| m.client_id.clone())),
        ]);
        table.push(row);
    }
    table
}

/// Kafka's `--members` table for one group.
fn members_table(d: &GroupDescription, verbose: bool) -> Table {
    let mut columns =
        vec![("GROUP", 15), ("CONSUMER-ID", 15), ("HOST", 15), ("CLIENT-ID", 15), ("#PARTITIONS", 15)];
    if verbose {
        columns.push(("ASSIGNMENT", 0));
    }
    let mut table = Table::new(&columns);
    for m in &d.members {
        let tps = assigned(m);
        let mut row = vec![
            d.group_id.clone(),
            m.member_id.clone(),
            m.client_host.clone(),
            m.client_id.clone(),
            tps.len().to_string(),
        ];
        if verbose {
            row.push(assignment_text(&tps));
        }
        table.push(row);
    }
    table
}

/// Kafka's ASSIGNMENT column: `topic(0,1), other(2)`, topics sorted; `-` for none.
fn assignment_text(tps: &[TopicPartition]) -> String {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in tps {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    if by_topic.is_empty() {
        return MISSING.to_string();
    }
    by_topic
        .into_iter()
        .map(|(t, mut ps)| {
            ps.sort_unstable();
            let ps: Vec<String> = ps.iter().map(i32::to_string).collect();
            format!("{t}({})", ps.join(","))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Kafka's `--state` table for one group.
fn state_table(d: &GroupDescription, coordinator: &BrokerEndpoint) -> Table {
    let mut table = Table::new(&[
        ("GROUP", 15),
        ("COORDINATOR (ID)", 25),
        ("ASSIGNMENT-STRATEGY", 20),
        ("STATE", 20),
        ("#MEMBERS", 0),
    ]);
    let strategy = if d.protocol.is_empty() { MISSING.to_string() } else { d.protocol.clone() };
    table.push(vec![
        d.group_id.clone(),
        format!("{}:{}  ({})", coordinator.host, coordinator.port, coordinator.id),
        strategy,
        d.state.clone(),
        d.members.len().to_string(),
    ]);
    table
}

/// Kafka's `--reset-offsets` table.
fn reset_table(plans: &[(String, BTreeMap<TopicPartition, i64>)]) -> Table {
    let mut table = Table::new(&[("GROUP", 15), ("TOPIC", 15), ("PARTITION", 10), ("NEW-OFFSET", 0)]);
    for (group, offsets) in plans {
        for (tp, offset) in offsets {
            table.push(vec![group.clone(), tp.topic.clone(), tp.partition.to_string(), offset.to_string()]);
        }
    }
    table
}

/// Kafka's `--list --state` table.
fn list_state_table(groups: &[(String, String)]) -> Table {
    let longest = groups.iter().map(|(g, _)| g.chars().count()).max().unwrap_or(0);
    let mut table = Table::new(&[("GROUP", longest.max(15) + 10), ("STATE", 0)]);
    for (g, s) in groups {
        table.push(vec![g.clone(), s.clone()]);
    }
    table
}

fn does_not_exist(group: &str) -> String {
    format!("Consumer group '{group}' does not exist. (`sluice consumer-groups --list` lists the groups)")
}

/// The admin client and a group-less consumer for ListOffsets.
#[derive(Debug)]
struct Ctx {
    admin: Admin,
    offsets: Consumer,
    timeout: Duration,
}

impl Ctx {
    fn new(config: ClientConfig) -> Result<Self> {
        let timeout = config.request_timeout;
        Ok(Ctx {
            admin: Admin::new(config.clone())?,
            offsets: Consumer::new(ConsumerConfig::new(config))?,
            timeout,
        })
    }

    /// Each topic's partitions and whether they have a leader; `None` for a topic that
    /// does not exist.
    async fn partitions(
        &self,
        topics: BTreeSet<String>,
    ) -> Result<BTreeMap<String, Option<BTreeMap<i32, bool>>>> {
        if topics.is_empty() {
            return Ok(BTreeMap::new());
        }
        let described = self.admin.describe_topics(topics.iter().cloned().collect()).await?;
        let mut out = BTreeMap::new();
        for t in topics {
            let found = described.iter().find(|d| d.name == t);
            let partitions = match found {
                Some(d) if d.error.is_none() => {
                    Some(d.partitions.iter().map(|p| (p.partition, p.leader.is_some())).collect())
                }
                Some(d) => match &d.error {
                    Some(BrokerError::UnknownTopicOrPartition { .. }) | None => None,
                    Some(e) => bail!("cannot describe topic {t}: {e}"),
                },
                None => None,
            };
            out.insert(t, partitions);
        }
        Ok(out)
    }

    /// Of `tps`, those that exist and have a leader (the others' offsets cannot be read).
    async fn readable(&self, tps: &BTreeSet<TopicPartition>) -> Result<BTreeSet<TopicPartition>> {
        let topics = tps.iter().map(|tp| tp.topic.clone()).collect();
        let known = self.partitions(topics).await?;
        Ok(tps
            .iter()
            .filter(|tp| {
                known.get(&tp.topic).and_then(Option::as_ref).and_then(|ps| ps.get(&tp.partition))
                    == Some(&true)
            })
            .cloned()
            .collect())
    }

    async fn end_offsets(&self, tps: &BTreeSet<TopicPartition>) -> Result<BTreeMap<TopicPartition, i64>> {
        if tps.is_empty() {
            return Ok(BTreeMap::new());
        }
        let found =
            self.offsets.end_offsets(tps.iter().cloned()).await.context("cannot read the log end offsets")?;
        Ok(found.into_iter().collect())
    }

    async fn start_offsets(&self, tps: &BTreeSet<TopicPartition>) -> Result<BTreeMap<TopicPartition, i64>> {
        if tps.is_empty() {
            return Ok(BTreeMap::new());
        }
        let found = self
            .offsets
            .beginning_offsets(tps.iter().cloned())
            .await
            .context("cannot read the log start offsets")?;
        Ok(found.into_iter().collect())
    }

    /// The coordinator of `group` (asking again while `__consumer_offsets` is created).
    async fn coordinator(&self, group: &str) -> Result<BrokerEndpoint> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let e =
                match self.admin.cluster().call_any(FindCoordinator { group_id: group.into() }, true).await {
                    Ok(b) => return Ok(b),
                    Err(ClusterError::Broker(e)) if !e.is_retriable() => {
                        bail!("cannot find the coordinator of group '{group}': {e}")
                    }
                    Err(e) => e,
                };
            if Instant::now() >= deadline {
                bail!("cannot find the coordinator of group '{group}' within {:?}: {e}", self.timeout);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn list(ctx: &Ctx, states: Option<&str>) -> Result<()> {
    let groups = ctx.admin.list_groups().await?;
    let Some(states) = states else {
        for g in groups {
            println!("{}", g.group_id);
        }
        return Ok(());
    };
    let wanted = parse_states(states)?;
    let shown: Vec<(String, String)> = groups
        .into_iter()
        .filter(|g| wanted.is_empty() || wanted.iter().any(|s| s.eq_ignore_ascii_case(&g.state)))
        .map(|g| (g.group_id, g.state))
        .collect();
    print!("{}", list_state_table(&shown).render());
    Ok(())
}

const STATES: [&str; 5] = ["PreparingRebalance", "CompletingRebalance", "Stable", "Dead", "Empty"];

/// `--list --state A,B`: Kafka's state names, any case.
fn parse_states(text: &str) -> Result<Vec<&'static str>> {
    let mut out = Vec::new();
    for s in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let known = STATES
            .iter()
            .find(|k| k.eq_ignore_ascii_case(s))
            .ok_or_else(|| anyhow!("Invalid state list '{text}'. Valid states are: {}", STATES.join(", ")))?;
        out.push(*known);
    }
    Ok(out)
}

async fn describe(ctx: &Ctx, groups: &[String], view: View, verbose: bool) -> Result<()> {
    let described = ctx.admin.describe_groups(groups.to_vec()).await?;
    let mut failed = Vec::new();
    for (group, d) in groups.iter().zip(described) {
        let d = match d {
            Ok(d) => d,
            Err(BrokerError::GroupIdNotFound { .. }) => {
                failed.push(does_not_exist(group));
                continue;
            }
            Err(e) => {
                failed.push(format!("cannot describe group '{group}': {e}"));
                continue;
            }
        };
        let committed = if view == View::Offsets {
            committed_map(&ctx.admin.list_group_offsets(group).await?)
        } else {
            BTreeMap::new()
        };
        if d.state == "Dead" && committed.is_empty() {
            failed.push(does_not_exist(group));
            continue;
        }
        match d.state.as_str() {
            "Empty" => eprintln!("\nConsumer group '{group}' has no active members."),
            "PreparingRebalance" | "CompletingRebalance" => {
                eprintln!("\nWarning: Consumer group '{group}' is rebalancing.")
            }
            _ => {}
        }
        let table = match view {
            View::Offsets => {
                let rows = offset_rows(&d, &committed);
                let tps: BTreeSet<TopicPartition> = rows.iter().map(|(tp, _)| tp.clone()).collect();
                let ends = ctx.end_offsets(&ctx.readable(&tps).await?).await?;
                offsets_table(group, &rows, &committed, &ends, verbose)
            }
            View::Members => members_table(&d, verbose),
            View::State => state_table(&d, &ctx.coordinator(group).await?),
        };
        print_table(&table);
    }
    all_or_failures(failed)
}

async fn delete(ctx: &Ctx, groups: Vec<String>) -> Result<()> {
    if groups.is_empty() {
        println!("There are no consumer groups to delete.");
        return Ok(());
    }
    let results = ctx.admin.delete_groups(groups).await?;
    let quoted = |gs: &[&str]| gs.iter().map(|g| format!("'{g}'")).collect::<Vec<_>>().join(", ");
    let deleted: Vec<&str> = results.iter().filter(|(_, r)| r.is_ok()).map(|(g, _)| g.as_str()).collect();
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(g, r)| {
            r.as_ref()
                .err()
                .map(|e| format!("* Group '{g}' could not be deleted due to: {}", delete_error(e)))
        })
        .collect();
    if failed.is_empty() {
        println!("Deletion of requested consumer groups ({}) was successful.", quoted(&deleted));
        return Ok(());
    }
    if !deleted.is_empty() {
        println!("These consumer groups were deleted successfully: {}", quoted(&deleted));
    }
    bail!("Deletion of some consumer groups failed:\n{}", failed.join("\n"))
}

/// Why a group could not be deleted, in Kafka's words, with the fix.
fn delete_error(e: &BrokerError) -> String {
    match e {
        BrokerError::NonEmptyGroup { members, .. } => format!(
            "The group is not empty ({members} active member{}): stop its consumers, or wait for their \
             session timeout, then delete it",
            if *members == 1 { "" } else { "s" }
        ),
        BrokerError::GroupIdNotFound { .. } => {
            "The group id does not exist (`sluice consumer-groups --list` lists the groups)".to_string()
        }
        e => e.to_string(),
    }
}

/// Which partitions `--reset-offsets` touches.
#[derive(Debug)]
enum Scope {
    /// Every partition the group has a committed offset for.
    AllTopics,
    /// Topics, each with all partitions (`None`) or some.
    Topics(Vec<(String, Option<Vec<i32>>)>),
}

/// The partitions named by `--topic`, each checked to exist and have a leader.
async fn scope_partitions(
    ctx: &Ctx,
    topics: &[(String, Option<Vec<i32>>)],
) -> Result<BTreeSet<TopicPartition>> {
    let names: BTreeSet<String> = topics.iter().map(|(t, _)| t.clone()).collect();
    let known = ctx.partitions(names).await?;
    let mut out = BTreeSet::new();
    let mut missing = Vec::new();
    let mut leaderless = Vec::new();
    for (topic, partitions) in topics {
        let Some(Some(existing)) = known.get(topic) else {
            bail!("topic {topic} does not exist (`sluice topics --list` lists the topics)");
        };
        let chosen: Vec<i32> = partitions.clone().unwrap_or_else(|| existing.keys().copied().collect());
        for p in chosen {
            let tp = TopicPartition::new(topic.clone(), p);
            match existing.get(&p) {
                None => missing.push(tp.to_string()),
                Some(false) => leaderless.push(tp.to_string()),
                Some(true) => {
                    out.insert(tp);
                }
            }
        }
    }
    if !missing.is_empty() {
        bail!(
            "The partitions \"{}\" do not exist (`sluice topics --describe --topic TOPIC` shows a topic's partitions)",
            missing.join(",")
        );
    }
    if !leaderless.is_empty() {
        bail!(
            "The partitions \"{}\" have no leader; try again once they have one (`sluice topics --describe \
             --unavailable-partitions`)",
            leaderless.join(",")
        );
    }
    Ok(out)
}

async fn reset(ctx: &Ctx, groups: &[String], scope: &Scope, to: ResetTo, execute: bool) -> Result<()> {
    let described = ctx.admin.describe_groups(groups.to_vec()).await?;
    let mut failed = Vec::new();
    let mut plans = Vec::new();
    for (group, d) in groups.iter().zip(described) {
        let state = match d {
            Ok(d) => d.state,
            Err(BrokerError::GroupIdNotFound { .. }) => "Dead".to_string(),
            Err(e) => {
                failed.push(format!("cannot describe group '{group}': {e}"));
                continue;
            }
        };
        if state != "Empty" && state != "Dead" {
            failed.push(format!(
                "Assignments can only be reset if the group '{group}' is inactive, but the current state is \
                 {state}. (Stop its consumers, or wait for their session timeout; `sluice consumer-groups \
                 --describe --members --group {group}` shows them.)"
            ));
            continue;
        }
        let committed = committed_map(&ctx.admin.list_group_offsets(group).await?);
        let partitions = match scope {
            Scope::AllTopics => committed.keys().cloned().collect(),
            Scope::Topics(topics) => scope_partitions(ctx, topics).await?,
        };
        if partitions.is_empty() {
            eprintln!(
                "Consumer group '{group}' has no committed offsets: nothing to reset (name the partitions \
                 with --topic)"
            );
            continue;
        }
        let mut known = Known {
            committed: committed.iter().map(|(tp, (o, _))| (tp.clone(), *o)).collect(),
            ..Known::default()
        };
        if matches!(to, ResetTo::Earliest | ResetTo::Offset(_) | ResetTo::ShiftBy(_)) {
            known.start = ctx.start_offsets(&partitions).await?;
        }
        if !matches!(to, ResetTo::Earliest) {
            known.end = ctx.end_offsets(&partitions).await?;
        }
        if let ResetTo::Datetime(ms) = to {
            let found = ctx
                .offsets
                .offsets_for_times(partitions.iter().map(|tp| (tp.clone(), ms)))
                .await
                .context("cannot look up offsets by time")?;
            known.at_time = found.into_iter().map(|(tp, o)| (tp, o.map(|o| o.offset))).collect();
        }
        let (offsets, warnings) = new_offsets(to, &partitions, &known)?;
        for w in warnings {
            eprintln!("{w}");
        }
        if execute {
            let commits = offsets
                .iter()
                .map(|(tp, &offset)| CommitOffset::new(tp.topic.clone(), tp.partition, offset))
                .collect();
            let results = ctx.admin.alter_group_offsets(group, commits).await.with_context(|| {
                format!("cannot reset the offsets of group '{group}' (is it still inactive?)")
            })?;
            for (topic, partition, r) in results {
                if let Err(e) = r {
                    failed.push(format!("cannot reset {topic}-{partition} of group '{group}': {e}"));
                }
            }
        }
        plans.push((group.clone(), offsets));
    }
    print_table(&reset_table(&plans));
    all_or_failures(failed)
}

/// Prints a table after a blank line, as Kafka's tool does; nothing for an empty one.
fn print_table(table: &Table) {
    if !table.rows.is_empty() {
        print!("\n{}", table.render());
    }
}

/// Success, or every group's failure, one per line.
fn all_or_failures(failed: Vec<String>) -> Result<()> {
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("{}", failed.join("\n")))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Result<GroupsArgs, clap::Error> {
        let all = ["sluice", "consumer-groups"].into_iter().chain(args.iter().copied());
        match crate::Cli::try_parse_from(all)?.command {
            crate::Command::ConsumerGroups(a) => Ok(a),
            other => panic!("parsed as {other:?}"),
        }
    }

    fn tp(t: &str, p: i32) -> TopicPartition {
        TopicPartition::new(t, p)
    }

    fn member(id: &str, partitions: &[(&str, i32)]) -> MemberDescription {
        let a = Assignment {
            partitions: partitions.iter().map(|(t, p)| (t.to_string(), *p)).collect(),
            user_data: None,
        };
        MemberDescription {
            member_id: id.into(),
            client_id: "console-consumer".into(),
            client_host: "admin@127.0.0.1:5000".into(),
            metadata: vec![],
            assignment: a.encode(),
        }
    }

    fn group(state: &str, members: Vec<MemberDescription>) -> GroupDescription {
        GroupDescription {
            group_id: "g".into(),
            state: state.into(),
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            generation_id: 3,
            leader: String::new(),
            members,
        }
    }

    #[test]
    fn the_offsets_table_has_kafkas_columns_and_dashes_for_what_is_unknown() {
        let d = group("Empty", vec![]);
        let committed = BTreeMap::from([(tp("orders", 0), (17, -1)), (tp("orders", 1), (23, 4))]);
        let ends = BTreeMap::from([(tp("orders", 0), 50)]);
        let rows = offset_rows(&d, &committed);
        assert_eq!(
            offsets_table("g", &rows, &committed, &ends, false).render(),
            "GROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             \
             CONSUMER-ID     HOST            CLIENT-ID\n\
             g               orders          0          17              50              33              \
             -               -               -\n\
             g               orders          1          23              -               -               \
             -               -               -\n"
        );
        let verbose = offsets_table("g", &rows, &committed, &ends, true).render();
        let lines: Vec<&str> = verbose.lines().collect();
        assert!(
            lines[0].starts_with("GROUP           TOPIC           PARTITION  LEADER-EPOCH    CURRENT-OFFSET")
        );
        assert!(
            lines[1].starts_with("g               orders          0          -               17 "),
            "{verbose}"
        );
        assert!(
            lines[2].starts_with("g               orders          1          4               23 "),
            "{verbose}"
        );
    }

    #[test]
    fn assigned_partitions_come_first_by_member_size_and_long_values_widen_their_column() {
        let long = "a-consumer-id-longer-than-fifteen";
        let d = group("Stable", vec![member("m1", &[("t", 2)]), member(long, &[("t", 1), ("t", 0)])]);
        let committed = BTreeMap::from([(tp("t", 0), (5, -1)), (tp("u", 0), (1, -1))]);
        let rows = offset_rows(&d, &committed);
        let order: Vec<(String, i32, Option<&str>)> = rows
            .iter()
            .map(|(tp, m)| (tp.topic.clone(), tp.partition, m.map(|m| m.member_id.as_str())))
            .collect();
        assert_eq!(
            order,
            vec![
                ("t".into(), 0, Some(long)),
                ("t".into(), 1, Some(long)),
                ("t".into(), 2, Some("m1")),
                ("u".into(), 0, None)
            ]
        );
        let ends = BTreeMap::from([(tp("t", 0), 9), (tp("t", 1), 4), (tp("t", 2), 0), (tp("u", 0), 1)]);
        let text = offsets_table("g", &rows, &committed, &ends, false).render();
        let lines: Vec<&str> = text.lines().collect();
        let at = lines[0].find("HOST").expect("HOST");
        assert!(at > lines[0].find("CONSUMER-ID").expect("CONSUMER-ID") + long.len(), "{text}");
        for l in &lines[1..3] {
            assert_eq!(l.find("admin@"), Some(at), "{text}");
        }
        assert_eq!(&lines[4][at..at + 2], "- ", "{text}");
        assert!(lines[1].contains(" 5               9               4 "), "{text}");
        assert!(lines[2].contains(" -               4               - "), "no commit, no lag: {text}");
    }

    #[test]
    fn members_and_state_tables_are_kafkas() {
        let d = group("Stable", vec![member("m1", &[("t", 1), ("t", 0), ("a", 3)]), member("m2", &[])]);
        assert_eq!(
            members_table(&d, false).render(),
            "GROUP           CONSUMER-ID     HOST                 CLIENT-ID        #PARTITIONS\n\
             g               m1              admin@127.0.0.1:5000 console-consumer 3\n\
             g               m2              admin@127.0.0.1:5000 console-consumer 0\n"
        );
        let verbose = members_table(&d, true).render();
        assert!(
            verbose.lines().next().is_some_and(|l| l.ends_with("#PARTITIONS     ASSIGNMENT")),
            "{verbose}"
        );
        assert!(verbose.contains(" 3               a(3), t(0,1)\n"), "{verbose}");
        assert!(verbose.ends_with(" 0               -\n"), "{verbose}");
        let coordinator =
            BrokerEndpoint { id: 1, host: "127.0.0.1".into(), port: 9092, rack: None, listeners: Vec::new() };
        assert_eq!(
            state_table(&d, &coordinator).render(),
            "GROUP           COORDINATOR (ID)          ASSIGNMENT-STRATEGY  STATE                #MEMBERS\n\
             g               127.0.0.1:9092  (1)       range                Stable               2\n"
        );
        let empty = GroupDescription { protocol: String::new(), ..group("Empty", vec![]) };
        assert!(state_table(&empty, &coordinator).render().contains(" -                    Empty "));
    }

    #[test]
    fn reset_and_list_tables_are_kafkas() {
        let plans = vec![("g".to_string(), BTreeMap::from([(tp("orders", 0), 0), (tp("orders", 1), 12)]))];
        assert_eq!(
            reset_table(&plans).render(),
            "GROUP           TOPIC           PARTITION  NEW-OFFSET\n\
             g               orders          0          0\n\
             g               orders          1          12\n"
        );
        let listed = vec![("g".to_string(), "Empty".to_string())];
        assert_eq!(
            list_state_table(&listed).render(),
            "GROUP                     STATE\ng                         Empty\n"
        );
        assert_eq!(parse_states("stable, EMPTY").expect("valid"), vec!["Stable", "Empty"]);
        assert!(parse_states("Running").expect_err("unknown").to_string().contains("Valid states are: "));
    }

    #[test]
    fn lag_is_known_only_with_both_offsets() {
        assert_eq!(lag(Some(40), Some(100)), Some(60));
        assert_eq!(lag(None, Some(100)), None);
        assert_eq!(lag(Some(3), None), None);
    }

    #[test]
    fn datetimes_are_utc_with_an_optional_zone() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00.000").expect("epoch"), 0);
        assert_eq!(parse_datetime("2024-05-01T13:30:00.250").expect("valid"), 1_714_570_200_250);
        assert_eq!(parse_datetime("2024-05-01T13:30:00.250Z").expect("Z"), 1_714_570_200_250);
        assert_eq!(parse_datetime("2024-05-01T13:30:00").expect("no millis"), 1_714_570_200_000);
        assert_eq!(parse_datetime("2024-05-01T15:30:00.250+02:00").expect("offset"), 1_714_570_200_250);
        assert_eq!(
            parse_datetime("2024-05-01T11:00:00.000-02:30").expect("negative offset"),
            1_714_570_200_000
        );
        assert_eq!(parse_datetime("2024-05-01T13:30:00.5").expect("one digit"), 1_714_570_200_500);
        for bad in [
            "2024-05-01",
            "2024-05-01 13:30:00.000",
            "2024-5-01T13:30:00.000",
            "2024-02-30T00:00:00.000",
            "2024-05-01T24:00:00.000",
            "2024-05-01T13:30.000",
            "2024-05-01T13:30:00.x",
            "2024-05-01T13:30:00.000+2",
            "yesterday",
        ] {
            let err = parse_datetime(bad).expect_err(bad).to_string();
            assert!(err.contains("expected YYYY-MM-DDTHH:mm:SS.sss in UTC"), "{bad}: {err}");
        }
    }

    #[test]
    fn topic_arguments_name_all_partitions_or_some() {
        assert_eq!(parse_topic_arg("orders").expect("topic"), ("orders".to_string(), None));
        assert_eq!(
            parse_topic_arg("orders:0, 2,2").expect("partitions"),
            ("orders".to_string(), Some(vec![0, 2]))
        );
        for bad in ["", ":1", "orders:", "orders:x", "orders:-1", "orders:1:2"] {
            let err = parse_topic_arg(bad).expect_err(bad).to_string();
            assert!(err.contains("e.g. orders:0,2"), "{bad}: {err}");
        }
    }

    #[test]
    fn new_offsets_stay_within_the_log_and_shifts_need_a_commit() {
        assert_eq!(clamp_offset(5, 2, 10), 5);
        assert_eq!(clamp_offset(-3, 2, 10), 2);
        assert_eq!(clamp_offset(11, 2, 10), 10);
        let ps = BTreeSet::from([tp("t", 0), tp("t", 1)]);
        let known = Known {
            start: BTreeMap::from([(tp("t", 0), 0), (tp("t", 1), 10)]),
            end: BTreeMap::from([(tp("t", 0), 50), (tp("t", 1), 60)]),
            committed: BTreeMap::from([(tp("t", 0), 40)]),
            at_time: BTreeMap::from([(tp("t", 0), Some(7)), (tp("t", 1), None)]),
        };
        let offsets = |to| new_offsets(to, &ps, &known).map(|(o, _)| o.into_values().collect::<Vec<_>>());
        assert_eq!(offsets(ResetTo::Earliest).expect("earliest"), vec![0, 10]);
        assert_eq!(offsets(ResetTo::Latest).expect("latest"), vec![50, 60]);
        assert_eq!(offsets(ResetTo::Offset(20)).expect("offset"), vec![20, 20]);
        assert_eq!(offsets(ResetTo::Offset(55)).expect("past the end"), vec![50, 55]);
        assert_eq!(offsets(ResetTo::Offset(5)).expect("before the start"), vec![5, 10]);
        let (by_time, warnings) = new_offsets(ResetTo::Datetime(0), &ps, &known).expect("datetime");
        assert_eq!(
            by_time.into_values().collect::<Vec<_>>(),
            vec![7, 60],
            "the log end without a later record"
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("Partition 1 from topic t"), "{warnings:?}");
        let err = offsets(ResetTo::ShiftBy(-5)).expect_err("t-1 has no commit").to_string();
        assert!(err
            .starts_with("Cannot shift offset for partition t-1 since there is no current committed offset"));
        let one = BTreeSet::from([tp("t", 0)]);
        let shift = |n| new_offsets(ResetTo::ShiftBy(n), &one, &known).map(|(o, _)| o[&tp("t", 0)]);
        assert_eq!(shift(-5).expect("back"), 35);
        assert_eq!(shift(-100).expect("before the start"), 0);
        assert_eq!(shift(100).expect("past the end"), 50);
        assert_eq!(shift(i64::MAX).expect("no overflow"), 50);
    }

    #[test]
    fn exactly_one_action_and_only_the_flags_it_takes() {
        let a =
            parse(&["--describe", "--group", "g", "--group", "h", "--members", "--verbose"]).expect("valid");
        check_combinations(&a).expect("fine");
        assert_eq!(a.group, vec!["g", "h"]);
        assert!(parse(&["--group", "g"]).is_err(), "no action");
        assert!(parse(&["--list", "--describe"]).is_err(), "two actions");
        assert!(parse(&["--describe", "--group", "g", "--all-groups"]).is_err(), "both");
        let err = |args: &[&str]| {
            check_combinations(&parse(args).expect("clap accepts it")).expect_err("refused").to_string()
        };
        assert!(err(&["--describe"]).contains("--describe needs --group GROUP (repeatable) or --all-groups"));
        assert!(err(&["--list", "--group", "g"]).contains("--list lists every group"));
        assert_eq!(err(&["--list", "--members"]), "--members goes with --describe");
        assert!(err(&["--describe", "--group", "g", "--members", "--state"]).contains("at most one of"));
        assert!(err(&["--describe", "--group", "g", "--state", "Stable"]).contains("takes no states"));
        assert_eq!(err(&["--delete", "--group", "g", "--state"]), "--state goes with --describe or --list");
        assert_eq!(
            err(&["--describe", "--group", "g", "--to-earliest"]),
            "--to-earliest goes with --reset-offsets"
        );
        assert!(err(&["--reset-offsets", "--group", "g", "--to-earliest"]).contains("--topic TOPIC[:P,P...]"));
        let a = parse(&["--list", "--state"]).expect("bare --state");
        assert_eq!(a.state.as_deref(), Some(""));
        check_combinations(&a).expect("fine");
        assert!(parse(&["--reset-offsets", "--group", "g", "--all-topics", "--topic", "t", "--to-latest"])
            .is_err());
        assert!(parse(&[
            "--reset-offsets",
            "--group",
            "g",
            "--all-topics",
            "--to-latest",
            "--dry-run",
            "--execute"
        ])
        .is_err());
    }

    #[test]
    fn a_reset_takes_exactly_one_scenario() {
        let scenario = |args: &[&str]| {
            let mut all = vec!["--reset-offsets", "--group", "g", "--all-topics"];
            all.extend_from_slice(args);
            reset_scenario(&parse(&all).expect("clap accepts it"))
        };
        assert_eq!(scenario(&["--to-earliest"]).expect("one"), ResetTo::Earliest);
        assert_eq!(scenario(&["--shift-by", "-5"]).expect("negative"), ResetTo::ShiftBy(-5));
        assert_eq!(scenario(&["--to-offset", "7"]).expect("offset"), ResetTo::Offset(7));
        assert_eq!(
            scenario(&["--to-datetime", "1970-01-01T00:00:01.000"]).expect("time"),
            ResetTo::Datetime(1000)
        );
        let none = scenario(&[]).expect_err("none").to_string();
        assert!(none.contains("needs one of --to-earliest, --to-latest"), "{none}");
        let two = scenario(&["--to-earliest", "--to-latest"]).expect_err("two").to_string();
        assert!(two.contains("takes only one of"), "{two}");
        assert!(scenario(&["--to-datetime", "now"]).is_err());
    }

    #[test]
    fn deletion_errors_say_what_to_do() {
        let e = delete_error(&BrokerError::NonEmptyGroup { group: "g".into(), members: 1 });
        assert!(e.starts_with("The group is not empty (1 active member): stop its consumers"), "{e}");
        let e = delete_error(&BrokerError::GroupIdNotFound { group: "g".into() });
        assert!(e.contains("does not exist") && e.contains("--list"), "{e}");
    }
}
