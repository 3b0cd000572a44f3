//! Cluster metadata: which brokers there are and who leads which partition.
//!
//! A [`Cluster`] is a cheaply clonable handle shared by a client's parts. It owns the
//! transport (`sluice_net::Client<BrokerProtocol>`, one cached connection per broker) and
//! caches the last [`ClusterView`]. The first metadata request goes to the bootstrap servers
//! in order until one answers; later ones go to any known broker (in turn), then to the
//! bootstrap servers again.
//!
//! The cache covers the topics the client has asked about. It is refreshed
//! - on demand ([`Cluster::refresh`]): concurrent refreshes are coalesced (a caller that
//!   arrives while one is running waits for it and takes its answer), and consecutive ones
//!   are spaced by `retry.backoff.ms`;
//! - in the background ([`Cluster::refresh_in_background`]) when a request met a stale
//!   leader, or when the view is older than `metadata.max.age.ms`
//!   ([`Cluster::refresh_if_stale`]).
//!
//! A producer's cluster asks brokers to create unknown topics (`allow_auto_create`), a
//! consumer's and an admin's do not. A topic that is unknown or has no leader yet (as right
//! after it was created) is asked about again, with backoff, until the caller's timeout.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sluice_net::{Client, ConnectError, Rpc, RpcError};
use tokio::sync::watch;
use tracing::debug;

use super::config::{ClientConfig, ConfigError};
use super::proto::{BrokerEndpoint, BrokerError, BrokerProtocol, Metadata, MetadataRequest, TopicMetadata};

/// Why metadata could not be had, or a call could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The configuration is incomplete or its TLS files unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A connection failed for a reason retrying cannot fix (certificates, protocol).
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// No broker (known or bootstrap) answered.
    #[error("no broker answered (tried {tried}); last error: {last_error}")]
    NoBrokerAvailable {
        /// The addresses tried, comma-separated.
        tried: String,
        /// The last failure.
        last_error: String,
    },
    /// A broker refused the request.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// A call failed after it was sent (the request may or may not have taken effect).
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// What was waited for did not happen in time.
    #[error("{what} not available after {after:?}{}", last_error_suffix(last_error))]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        after: Duration,
        /// The last reason it was not available.
        last_error: Option<String>,
    },
}

fn last_error_suffix(last_error: &Option<String>) -> String {
    last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default()
}

impl ClusterError {
    /// Whether waiting and trying again could help.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClusterError::NoBrokerAvailable { .. } => true,
            ClusterError::Broker(e) => e.is_retriable(),
            ClusterError::Rpc(e) => rpc_is_retriable(e),
            ClusterError::Config(_) | ClusterError::Connect(_) | ClusterError::Timeout { .. } => false,
        }
    }
}

/// Whether a failed call is worth retrying (on a new connection or another broker): lost
/// connections, timeouts, closed channels, addresses that do not resolve (yet); not
/// certificate or protocol problems, nor frames the server refused.
pub fn rpc_is_retriable(e: &RpcError) -> bool {
    match e {
        // An address that does not resolve may resolve later (DNS), as Kafka retries it.
        RpcError::Connect(c) => {
            c.is_transient() || matches!(c, ConnectError::Socket(_) | ConnectError::Address { .. })
        }
        RpcError::Frame(_) | RpcError::Remote(_) | RpcError::UnexpectedReply { .. } => false,
        _ => true,
    }
}

/// One topic as the client last heard of it.
#[derive(Debug, Clone)]
pub struct TopicView {
    /// What the broker said.
    pub metadata: TopicMetadata,
    /// Per partition number: the leader's id and address, when it has a live one.
    leaders: Vec<Option<(i32, String)>>,
    /// Partitions with a live leader, ascending.
    pub available: Vec<i32>,
}

impl TopicView {
    pub(crate) fn new(metadata: TopicMetadata, brokers: &BTreeMap<i32, BrokerEndpoint>) -> Self {
        let size = metadata.partitions.iter().map(|p| p.partition.max(0) as usize + 1).max().unwrap_or(0);
        let mut leaders = vec![None; size];
        let mut available = Vec::new();
        for p in &metadata.partitions {
            let leader = p.leader.and_then(|id| brokers.get(&id).map(|b| (id, b.addr())));
            if leader.is_some() {
                available.push(p.partition);
            }
            if let Some(slot) = usize::try_from(p.partition).ok().and_then(|i| leaders.get_mut(i)) {
                *slot = leader;
            }
        }
        available.sort_unstable();
        TopicView { metadata, leaders, available }
    }

    /// How many partitions the topic has.
    pub fn num_partitions(&self) -> usize {
        self.metadata.partitions.len()
    }

    /// The leader of `partition` (id and `host:port`), if it has a live one.
    pub fn leader(&self, partition: i32) -> Option<(i32, &str)> {
        let slot = self.leaders.get(usize::try_from(partition).ok()?)?;
        slot.as_ref().map(|(id, addr)| (*id, addr.as_str()))
    }

    /// Whether the topic can be produced to / read: described without error and with
    /// partitions.
    pub fn is_usable(&self) -> bool {
        self.metadata.error.is_none() && !self.metadata.partitions.is_empty()
    }
}

/// What the client knows of the cluster at one moment.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// The cluster id.
    pub cluster_id: String,
    /// The controller's broker id, if known.
    pub controller_id: Option<i32>,
    /// Live brokers by id.
    pub brokers: BTreeMap<i32, BrokerEndpoint>,
    /// The topics asked about, by name.
    pub topics: BTreeMap<String, Arc<TopicView>>,
    /// When this view was fetched (`None`: never).
    pub fetched_at: Option<Instant>,
    /// Bumped on every refresh.
    pub generation: u64,
}

impl ClusterView {
    /// A topic, if it has been asked about.
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicView>> {
        self.topics.get(name)
    }

    /// The address of the leader of `topic`-`partition`, if known and live.
    pub fn leader_addr(&self, topic: &str, partition: i32) -> Option<&str> {
        self.topics.get(topic)?.leader(partition).map(|(_, addr)| addr)
    }

    /// A broker's address.
    pub fn broker_addr(&self, id: i32) -> Option<String> {
        self.brokers.get(&id).map(BrokerEndpoint::addr)
    }

    /// This view updated with `md`, which answered a request for `asked` (topics asked
    /// about but missing from the answer are forgotten).
    fn merged(&self, md: Metadata, asked: &[String], now: Instant) -> ClusterView {
        let brokers: BTreeMap<i32, BrokerEndpoint> = md.brokers.into_iter().map(|b| (b.id, b)).collect();
        let mut topics: BTreeMap<String, Arc<TopicView>> = self
            .topics
            .iter()
            .filter(|(name, _)| !asked.contains(name))
            // Leaders are resolved against the new broker list.
            .map(|(name, t)| (name.clone(), Arc::new(TopicView::new(t.metadata.clone(), &brokers))))
            .collect();
        for t in md.topics {
            topics.insert(t.name.clone(), Arc::new(TopicView::new(t, &brokers)));
        }
        ClusterView {
            cluster_id: md.cluster_id,
            controller_id: md.controller_id,
            brokers,
            topics,
            fetched_at: Some(now),
            generation: self.generation + 1,
        }
    }
}

struct State {
    view: Arc<ClusterView>,
    wanted: BTreeSet<String>,
    last_attempt: Option<Instant>,
    background: bool,
    next_node: usize,
}

struct Inner {
    net: Client<BrokerProtocol>,
    config: ClientConfig,
    allow_auto_create: bool,
    state: Mutex<State>,
    refresh_lock: tokio::sync::Mutex<()>,
    updates: watch::Sender<u64>,
}

/// How long an idempotent request waits for the broker asked before another is asked too
/// (a broker answers metadata from memory in milliseconds; a killed one never answers).
pub const HEDGE_AFTER: Duration = Duration::from_millis(250);

/// The shared handle on the cluster: transport, metadata cache, refreshes. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("bootstrap", &self.inner.config.bootstrap_servers)
            .field("generation", &self.view().generation)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// A handle for `config`'s cluster; reads the TLS files now, connects on first use.
    /// `allow_auto_create`: ask brokers to create topics this client names that do not
    /// exist (producers) or not (consumers, admin).
    pub fn new(config: &ClientConfig, allow_auto_create: bool) -> Result<Cluster, ClusterError> {
        config.validate()?;
        let tls = config.client_tls()?;
        let net = Client::<BrokerProtocol>::new(&tls, config.transport_options())?;
        let (updates, _) = watch::channel(0);
        Ok(Cluster {
            inner: Arc::new(Inner {
                net,
                config: config.clone(),
                allow_auto_create,
                state: Mutex::new(State {
                    view: Arc::default(),
                    wanted: BTreeSet::new(),
                    last_attempt: None,
                    background: false,
                    next_node: 0,
                }),
                refresh_lock: tokio::sync::Mutex::new(()),
                updates,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The transport.
    pub fn net(&self) -> &Client<BrokerProtocol> {
        &self.inner.net
    }

    /// The current view (possibly empty or stale; never waits).
    pub fn view(&self) -> Arc<ClusterView> {
        self.state().view.clone()
    }

    /// A topic from the current view, if it has been asked about.
    pub fn cached_topic(&self, topic: &str) -> Option<Arc<TopicView>> {
        self.state().view.topics.get(topic).cloned()
    }

    /// Adds topics to those every refresh asks about (no request now).
    pub fn want(&self, topics: &[String]) {
        self.state().wanted.extend(topics.iter().cloned());
    }

    /// Changes to the view's generation, for tasks that wait for new metadata.
    pub fn updates(&self) -> watch::Receiver<u64> {
        self.inner.updates.subscribe()
    }

    /// Completes once the metadata names another leader (or none) for every one of
    /// `partitions`: a connection still being made to `addr` for them, or a request waiting
    /// there, is not worth waiting for then. A broker that stops refuses handshakes while it
    /// drains (a connection retries those until `connection.setup.timeout.ms`), and a killed
    /// one answers nothing; the controller's new leaders end the wait instead.
    pub async fn led_elsewhere<'a, I>(&self, addr: &str, partitions: I)
    where
        I: IntoIterator<Item = (&'a str, i32)> + Clone,
    {
        let mut updates = self.updates();
        loop {
            let view = self.view();
            if partitions.clone().into_iter().all(|(topic, p)| view.leader_addr(topic, p) != Some(addr)) {
                return;
            }
            if updates.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Calls `addr` (connecting first if needed) about `partitions` it leads: `None` when the
    /// metadata names other leaders for all of them before the answer comes (see
    /// [`led_elsewhere`](Self::led_elsewhere)). Only for requests that may simply be asked
    /// again of the new leaders (reads).
    ///
    /// A broker that stops refuses handshakes while it drains (a connection retries those
    /// until `connection.setup.timeout.ms`), and one that died answers nothing until the
    /// connection's idle timeout. So while the connection is still being made, or once the
    /// call has taken longer than `answer_within` (a long poll's wait, say), the metadata is
    /// read again every [`HEDGE_AFTER`]: the controller's new leaders end the wait.
    pub async fn call_leader<'a, R, I>(
        &self,
        addr: &str,
        partitions: I,
        request: R,
        answer_within: Duration,
    ) -> Option<Result<R::Reply, RpcError>>
    where
        R: Rpc<BrokerProtocol>,
        I: IntoIterator<Item = (&'a str, i32)> + Clone,
    {
        let started = Instant::now();
        let connected = std::sync::atomic::AtomicBool::new(false);
        let call = async {
            let conn = self.inner.net.connection(addr).await?;
            connected.store(true, std::sync::atomic::Ordering::Relaxed);
            conn.call(request).await
        };
        let refreshing = async {
            loop {
                tokio::time::sleep(HEDGE_AFTER).await;
                if !connected.load(std::sync::atomic::Ordering::Relaxed) || started.elapsed() > answer_within
                {
                    self.refresh_in_background();
                }
            }
        };
        tokio::select! {
            r = call => Some(r),
            () = self.led_elsewhere(addr, partitions) => None,
            () = refreshing => None,
        }
    }

    /// Calls `addr` (connecting first if needed).
    pub async fn call<R: Rpc<BrokerProtocol>>(&self, addr: &str, request: R) -> Result<R::Reply, RpcError> {
        self.inner.net.call(addr, request).await
    }

    /// Addresses to ask for anything: known brokers (starting with the next in turn), then
    /// the bootstrap servers.
    fn nodes(&self) -> Vec<String> {
        let mut st = self.state();
        let known: Vec<String> = st.view.brokers.values().map(BrokerEndpoint::addr).collect();
        let start = if known.is_empty() { 0 } else { st.next_node % known.len() };
        st.next_node = st.next_node.wrapping_add(1);
        let mut nodes: Vec<String> = known[start..].iter().chain(&known[..start]).cloned().collect();
        for b in &self.inner.config.bootstrap_servers {
            if !nodes.contains(b) {
                nodes.push(b.clone());
            }
        }
        nodes
    }

    /// Sends `request` to the first broker that answers (known brokers, then bootstrap
    /// servers). A broker error in the reply is the caller's to judge; a call that failed
    /// after it was sent is not sent again unless `idempotent`.
    pub async fn call_any<R, T>(&self, request: R, idempotent: bool) -> Result<T, ClusterError>
    where
        R: Rpc<BrokerProtocol, Reply = Result<T, BrokerError>> + Clone,
    {
        self.call_any_accepting(request, idempotent, |_| None).await
    }

    /// [`call_any`](Self::call_any), also passing over brokers whose answer `unusable`
    /// explains away (it returns why).
    ///
    /// A request that may be asked again (`idempotent`: metadata, producer ids) is *hedged*:
    /// a killed broker answers nothing (QUIC has no reset from a dead process), so when the
    /// broker asked has not answered within [`HEDGE_AFTER`] the next one is asked too,
    /// without giving up on the first; the first usable answer wins. A broker that answers
    /// with an error, or cannot be reached, passes the question on at once.
    async fn call_any_accepting<R, T>(
        &self,
        request: R,
        idempotent: bool,
        unusable: impl Fn(&T) -> Option<&'static str>,
    ) -> Result<T, ClusterError>
    where
        R: Rpc<BrokerProtocol, Reply = Result<T, BrokerError>> + Clone,
    {
        use futures_util::stream::{FuturesUnordered, StreamExt};
        let nodes = self.nodes();
        let mut last_error = String::from("no broker to ask");
        let judge =
            |addr: &str, answer: Result<Result<T, BrokerError>, RpcError>, last_error: &mut String| {
                match answer {
                    Ok(Ok(reply)) => match unusable(&reply) {
                        None => Some(Ok(reply)),
                        Some(why) => {
                            debug!(%addr, why, "answer not usable; trying the next broker");
                            *last_error = format!("{addr}: {why}");
                            None
                        }
                    },
                    Ok(Err(e)) if e.is_retriable() && idempotent => {
                        debug!(%addr, error = %e, "broker could not answer; trying the next");
                        *last_error = format!("{addr}: {e}");
                        None
                    }
                    Ok(Err(e)) => Some(Err(e.into())),
                    Err(RpcError::Connect(c))
                        if !c.is_transient() && !matches!(c, ConnectError::Address { .. }) =>
                    {
                        Some(Err(c.into()))
                    }
                    Err(e @ RpcError::Connect(_)) => {
                        debug!(%addr, error = %e, "broker unreachable; trying the next");
                        *last_error = e.to_string();
                        None
                    }
                    Err(e) if idempotent && rpc_is_retriable(&e) => {
                        debug!(%addr, error = %e, "call failed; trying the next broker");
                        *last_error = e.to_string();
                        None
                    }
                    Err(e) => Some(Err(e.into())),
                }
            };
        if !idempotent || nodes.len() < 2 {
            for addr in &nodes {
                let answer = self.call(addr, request.clone()).await;
                if let Some(done) = judge(addr, answer, &mut last_error) {
                    return done;
                }
            }
            return Err(ClusterError::NoBrokerAvailable { tried: nodes.join(", "), last_error });
        }
        let deadline = tokio::time::Instant::now() + self.inner.config.request_timeout;
        let mut asking = FuturesUnordered::new();
        let mut next = 0;
        let mut hedge_at = tokio::time::Instant::now();
        loop {
            // Ask the next broker when the time to hedge has come, or nobody is being asked.
            if next < nodes.len() && (asking.is_empty() || tokio::time::Instant::now() >= hedge_at) {
                let addr = nodes[next].clone();
                let call = self.call(&nodes[next], request.clone());
                asking.push(async move { (addr, call.await) });
                next += 1;
                hedge_at = tokio::time::Instant::now() + HEDGE_AFTER;
            }
            if asking.is_empty() {
                return Err(ClusterError::NoBrokerAvailable { tried: nodes.join(", "), last_error });
            }
            let more = next < nodes.len();
            tokio::select! {
                Some((addr, answer)) = asking.next() => {
                    if let Some(done) = judge(&addr, answer, &mut last_error) {
                        return done;
                    }
                    // Passed on: the next broker is asked at once.
                    hedge_at = tokio::time::Instant::now();
                }
                _ = tokio::time::sleep_until(hedge_at), if more => {
                    debug!(asked = next, "no answer yet; asking the next broker as well");
                }
                _ = tokio::time::sleep_until(deadline) => {
                    last_error = format!("no answer within {:?} (last: {last_error})", self.inner.config.request_timeout);
                    return Err(ClusterError::NoBrokerAvailable { tried: nodes.join(", "), last_error });
                }
            }
        }
    }

    /// Sends `request` to the controller if it is known and reachable, else to any broker.
    pub async fn call_controller<R, T>(&self, request: R) -> Result<T, ClusterError>
    where
        R: Rpc<BrokerProtocol, Reply = Result<T, BrokerError>> + Clone,
    {
        let view = self.refresh(&[]).await?;
        if let Some(addr) = view.controller_id.and_then(|id| view.broker_addr(id)) {
            match self.call(&addr, request.clone()).await {
                Ok(reply) => return Ok(reply?),
                Err(RpcError::Connect(c)) if c.is_transient() => {
                    debug!(%addr, error = %c, "controller unreachable; asking another broker");
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.call_any(request, false).await
    }

    /// One uncached metadata request to any broker. An answer without brokers comes from a
    /// broker that has not heard from the controller yet (just started): the next broker is
    /// asked instead, as Kafka's clients ignore empty metadata.
    ///
    /// While no broker can answer (all unreachable, or none has heard from the controller
    /// yet: a cluster that is still starting) it asks again every `retry.backoff.ms` until
    /// `request.timeout.ms` has passed.
    pub async fn fetch_metadata(&self, request: MetadataRequest) -> Result<Metadata, ClusterError> {
        let deadline = Instant::now() + self.inner.config.request_timeout;
        loop {
            let result = self
                .call_any_accepting(request.clone(), true, |md: &Metadata| {
                    md.brokers
                        .is_empty()
                        .then_some("it does not know the cluster yet (no brokers in its metadata)")
                })
                .await;
            match result {
                Err(ClusterError::NoBrokerAvailable { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(self.inner.config.retry_backoff.max(Duration::from_millis(10))).await;
                }
                other => return other,
            }
        }
    }

    /// Refreshes the view for `topics` and every topic asked about before. Joins a refresh
    /// already running instead of starting another, and waits `retry.backoff.ms` after the
    /// previous one.
    pub async fn refresh(&self, topics: &[String]) -> Result<Arc<ClusterView>, ClusterError> {
        let seen = {
            let mut st = self.state();
            st.wanted.extend(topics.iter().cloned());
            st.view.generation
        };
        let _one_at_a_time = self.inner.refresh_lock.lock().await;
        let view = self.view();
        if view.generation > seen && topics.iter().all(|t| view.topics.contains_key(t)) {
            return Ok(view);
        }
        let not_before = self.state().last_attempt.map(|t| t + self.inner.config.retry_backoff);
        if let Some(at) = not_before {
            tokio::time::sleep_until(at.into()).await;
        }
        let wanted: Vec<String> = {
            let mut st = self.state();
            st.last_attempt = Some(Instant::now());
            st.wanted.iter().cloned().collect()
        };
        let request =
            MetadataRequest { topics: Some(wanted.clone()), allow_auto_create: self.inner.allow_auto_create };
        let md = self.fetch_metadata(request).await?;
        let (view, gone) = {
            let mut st = self.state();
            let new = Arc::new(st.view.merged(md, &wanted, Instant::now()));
            // Brokers the cluster no longer lists (dead or stopped): requests waiting on
            // their connections fail now and are retried elsewhere, instead of waiting out
            // the request timeout on a process that will never answer.
            let gone: Vec<String> = st
                .view
                .brokers
                .values()
                .filter(|b| new.cluster_id == st.view.cluster_id && !new.brokers.contains_key(&b.id))
                .map(BrokerEndpoint::addr)
                .collect();
            st.view = new;
            (st.view.clone(), gone)
        };
        for addr in gone {
            debug!(%addr, "broker left the cluster; closing its connection");
            self.inner.net.forget(&addr);
        }
        self.inner.updates.send_replace(view.generation);
        Ok(view)
    }

    /// Starts a refresh in the background unless one is running (or there is no runtime).
    pub fn refresh_in_background(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        {
            let mut st = self.state();
            if st.background {
                return;
            }
            st.background = true;
        }
        let this = self.clone();
        runtime.spawn(async move {
            if let Err(e) = this.refresh(&[]).await {
                debug!(error = %e, "background metadata refresh failed");
            }
            this.state().background = false;
        });
    }

    /// Whether the view is older than `metadata.max.age.ms` (or was never fetched).
    pub fn is_stale(&self, now: Instant) -> bool {
        let st = self.state();
        match st.view.fetched_at {
            None => !st.wanted.is_empty(),
            Some(at) => now.saturating_duration_since(at) >= self.inner.config.metadata_max_age,
        }
    }

    /// Refreshes in the background if the view is older than `age` (or there is none).
    pub fn refresh_if_older(&self, age: Duration) {
        let old = self.state().view.fetched_at.is_none_or(|at| at.elapsed() >= age);
        if old {
            self.refresh_in_background();
        }
    }

    /// Refreshes in the background if the view is stale.
    pub fn refresh_if_stale(&self) {
        if self.is_stale(Instant::now()) {
            self.refresh_in_background();
        }
    }

    /// `topic`, waiting up to `timeout` (with refreshes spaced by `retry.backoff.ms`) while
    /// it is unknown, being created or has no partitions yet. Fails at once on an error that
    /// waiting cannot fix (an invalid name, for example).
    pub async fn topic(&self, topic: &str, timeout: Duration) -> Result<Arc<TopicView>, ClusterError> {
        let deadline = Instant::now() + timeout;
        let mut last_error = None;
        loop {
            if let Some(t) = self.cached_topic(topic) {
                match &t.metadata.error {
                    None if !t.metadata.partitions.is_empty() => return Ok(t),
                    Some(e) if !e.is_retriable() => return Err(e.clone().into()),
                    Some(e) => last_error = Some(e.to_string()),
                    None => last_error = Some(format!("topic {topic} has no partitions yet")),
                }
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::Timeout {
                    what: format!("metadata for topic {topic}"),
                    after: timeout,
                    last_error,
                });
            }
            match tokio::time::timeout_at(deadline.into(), self.refresh(&[topic.to_string()])).await {
                Err(_) => {}
                Ok(Ok(_)) => {}
                Ok(Err(e)) if e.is_retriable() => last_error = Some(e.to_string()),
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    /// The partitions of `topic`, waiting up to `request.timeout.ms` for it to be known.
    pub async fn partitions(
        &self,
        topic: &str,
    ) -> Result<Vec<super::proto::PartitionMetadata>, ClusterError> {
        Ok(self.topic(topic, self.inner.config.request_timeout).await?.metadata.partitions.clone())
    }

    /// The address of the leader of `topic`-`partition`, waiting up to `request.timeout.ms`
    /// for the topic to be known and the partition to have a live leader.
    pub async fn leader_addr(&self, topic: &str, partition: i32) -> Result<String, ClusterError> {
        let timeout = self.inner.config.request_timeout;
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.topic(topic, deadline.saturating_duration_since(Instant::now())).await?;
            if usize::try_from(partition).map_or(true, |p| p >= t.num_partitions()) {
                return Err(
                    BrokerError::UnknownTopicOrPartition { topic: topic.to_string(), partition }.into()
                );
            }
            if let Some((_, addr)) = t.leader(partition) {
                return Ok(addr.to_string());
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::Timeout {
                    what: format!("a leader for {topic}-{partition}"),
                    after: timeout,
                    last_error: None,
                });
            }
            match tokio::time::timeout_at(deadline.into(), self.refresh(&[topic.to_string()])).await {
                Err(_) | Ok(Ok(_)) => {}
                Ok(Err(e)) if e.is_retriable() => {}
                Ok(Err(e)) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::proto::PartitionMetadata;
    use super::*;

    fn broker(id: i32) -> BrokerEndpoint {
        BrokerEndpoint { id, host: format!("b{id}"), port: 9092, rack: None, listeners: Vec::new() }
    }

    fn partition(partition: i32, leader: Option<i32>) -> PartitionMetadata {
        PartitionMetadata {
            partition,
            leader,
            leader_epoch: 0,
            replicas: vec![1, 2],
            isr: vec![1, 2],
            offline_replicas: vec![],
        }
    }

    fn topic(name: &str, partitions: Vec<PartitionMetadata>) -> TopicMetadata {
        TopicMetadata { name: name.into(), error: None, internal: false, partitions }
    }

    #[test]
    fn leaders_resolve_to_live_brokers_addresses_and_dead_ones_are_unavailable() {
        let md = Metadata {
            cluster_id: "c".into(),
            controller_id: Some(1),
            brokers: vec![broker(1), broker(2)],
            topics: vec![topic("t", vec![partition(0, Some(1)), partition(1, Some(3)), partition(2, None)])],
        };
        let view = ClusterView::default().merged(md, &["t".into()], Instant::now());
        let t = view.topic("t").expect("t");
        assert_eq!(t.num_partitions(), 3);
        assert_eq!(t.leader(0), Some((1, "b1:9092")));
        assert_eq!(t.leader(1), None, "broker 3 is not live");
        assert_eq!(t.leader(2), None);
        assert_eq!(t.leader(7), None);
        assert_eq!(t.leader(-1), None);
        assert_eq!(t.available, vec![0]);
        assert_eq!(view.leader_addr("t", 0), Some("b1:9092"));
        assert_eq!(view.broker_addr(2).as_deref(), Some("b2:9092"));
        assert_eq!(view.generation, 1);
    }

    #[test]
    fn a_refresh_replaces_the_topics_it_asked_for_and_keeps_the_others() {
        let first = Metadata {
            cluster_id: "c".into(),
            controller_id: None,
            brokers: vec![broker(1)],
            topics: vec![topic("a", vec![partition(0, Some(1))]), topic("b", vec![partition(0, Some(1))])],
        };
        let view = ClusterView::default().merged(first, &["a".into(), "b".into()], Instant::now());
        let second = Metadata {
            cluster_id: "c".into(),
            controller_id: Some(2),
            brokers: vec![broker(2)],
            topics: vec![topic("a", vec![partition(0, Some(2)), partition(1, Some(2))])],
        };
        let view = view.merged(second, &["a".into()], Instant::now());
        assert_eq!(view.topic("a").map(|t| t.num_partitions()), Some(2));
        let b = view.topic("b").expect("kept");
        assert_eq!(b.leader(0), None, "b's leader (broker 1) is gone from the new broker list");
        assert_eq!(view.controller_id, Some(2));
        assert_eq!(view.generation, 2);
        let gone = Metadata { cluster_id: "c".into(), controller_id: None, brokers: vec![], topics: vec![] };
        let view = view.merged(gone, &["b".into()], Instant::now());
        assert!(view.topic("b").is_none(), "asked for and not answered: forgotten");
    }

    #[test]
    fn transient_failures_are_retriable_and_configuration_failures_are_not() {
        assert!(ClusterError::NoBrokerAvailable { tried: "a".into(), last_error: "x".into() }.is_retriable());
        assert!(ClusterError::Broker(BrokerError::LeaderNotAvailable { topic: "t".into(), partition: 0 })
            .is_retriable());
        assert!(!ClusterError::Broker(BrokerError::InvalidTopic { topic: "t".into(), reason: "r".into() })
            .is_retriable());
        assert!(rpc_is_retriable(&RpcError::Timeout {
            rpc: "Produce",
            addr: "a".into(),
            after: Duration::ZERO
        }));
        assert!(!rpc_is_retriable(&RpcError::UnexpectedReply { rpc: "Produce", got: "x".into() }));
        assert!(!rpc_is_retriable(&RpcError::Connect(ConnectError::CertificateRequired {
            addr: "a".into()
        })));
        let t = ClusterError::Timeout {
            what: "metadata for topic t".into(),
            after: Duration::from_secs(1),
            last_error: Some("x".into()),
        };
        assert_eq!(t.to_string(), "metadata for topic t not available after 1s (last error: x)");
    }
}
