//! [`RedisFrontier`]: a [`Frontier`] in Redis streams, shared by workers on any number of
//! machines (feature `redis`; the redis crate's synchronous API).
//!
//! See [`RedisFrontier`] for its keys and rules.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use redis::{Connection, Value};
use url::Url;

use super::{
    fingerprint, shard_of, Fingerprint, Frontier, FrontierError, Leased, Outcome, ShardStatus,
    Status,
};
use crate::batch::HostGrouping;

/// The consumer group of every shard.
const GROUP: &str = "workers";

/// Adds a URL if its fingerprint is new. KEYS: seen, shard stream. ARGV: fingerprint, URL.
const PUT: &str = r"
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
  redis.call('XADD', KEYS[2], '*', 'u', ARGV[2], 'f', ARGV[1])
  return 1
end
return 0
";

/// Records an outcome once and takes the entry off its shard. KEYS: done, results, stats,
/// shard stream. ARGV: fingerprint, ok (1 or 0), URL, record, entry id.
const COMPLETE: &str = r"
local new = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
if new == 1 then
  redis.call('XADD', KEYS[2], '*', 'url', ARGV[3], 'fp', ARGV[1], 'ok', ARGV[2], 'record', ARGV[4])
  if ARGV[2] == '1' then
    redis.call('HINCRBY', KEYS[3], 'done', 1)
  else
    redis.call('HINCRBY', KEYS[3], 'failed', 1)
  end
end
redis.call('XACK', KEYS[4], 'workers', ARGV[5])
redis.call('XDEL', KEYS[4], ARGV[5])
return new
";

/// A worker's heartbeat and its share of the busy shards: renews those it holds (up to its
/// share), lets go of the rest and of idle ones, takes free busy shards up to its share.
/// ARGV: prefix, worker id, lease in ms, shards, where to start looking. Returns the shards
/// held, then those just taken.
const OWN: &str = r"
local prefix, id = ARGV[1], ARGV[2]
local lease, shards, start = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local workers = prefix .. ':workers'
redis.call('ZADD', workers, now, id)
redis.call('ZREMRANGEBYSCORE', workers, '-inf', now - lease)
local live = redis.call('ZCARD', workers)
local busy = {}
for k = 0, shards - 1 do
  if redis.call('XLEN', prefix .. ':q:' .. k) > 0 then
    busy[#busy + 1] = k
  end
end
local share = math.ceil(#busy / live)
local held, taken = {}, {}
for k = 0, shards - 1 do
  local key = prefix .. ':owner:' .. k
  if redis.call('GET', key) == id then
    if #held < share and redis.call('XLEN', prefix .. ':q:' .. k) > 0 then
      redis.call('PEXPIRE', key, lease)
      held[#held + 1] = k
    else
      redis.call('DEL', key)
    end
  end
end
for i = 0, #busy - 1 do
  if #held >= share then
    break
  end
  local k = busy[(start + i) % #busy + 1]
  if redis.call('SET', prefix .. ':owner:' .. k, id, 'NX', 'PX', lease) then
    held[#held + 1] = k
    taken[#taken + 1] = k
  end
end
return {held, taken}
";

/// How long a worker keeps trying to reach Redis again before an operation fails.
const RECONNECT_FOR: Duration = Duration::from_secs(30);

/// Settings of a [`RedisFrontier`]; made by [`RedisFrontier::builder`].
#[derive(Debug, Clone)]
pub struct RedisFrontierBuilder {
    url: String,
    shards: usize,
    lease: Duration,
    grouping: HostGrouping,
    per_shard: usize,
}

impl RedisFrontierBuilder {
    /// The number of shards of a new frontier (default 64). A frontier keeps the number it
    /// was made with: a later worker's setting is ignored.
    pub fn shards(mut self, n: usize) -> Self {
        self.shards = n.clamp(1, 65_536);
        self
    }

    /// How long a worker holds its shards and leases without a heartbeat (default 60 s): a
    /// worker that dies or stalls this long loses them to another.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(100));
        self
    }

    /// About the most URLs of one shard a worker holds leased at once (default: no limit
    /// but the lease's own; one lease may pass it by up to this many). A worker that leases
    /// far ahead of what a host may start (a host held to a rate) makes the next holder of
    /// its shard wait longer when the shard moves: it waits until the URLs leased are done.
    /// A second's worth of the host's rate is enough.
    pub fn lease_per_shard(mut self, n: usize) -> Self {
        self.per_shard = n.max(1);
        self
    }

    /// How hosts are grouped into shards (by origin if not set). Every worker and every
    /// `put` of one frontier must use the same.
    pub fn hosts(mut self, grouping: HostGrouping) -> Self {
        self.grouping = grouping;
        self
    }

    /// Connects, and makes the frontier's shards and consumer groups if they are new.
    pub fn open(self) -> Result<RedisFrontier, FrontierError> {
        let (server, name) = split_url(&self.url)?;
        let error = |doing: &'static str, why: String| FrontierError {
            frontier: self.url.clone(),
            doing,
            why,
        };
        let client =
            redis::Client::open(server.as_str()).map_err(|e| error("open", e.to_string()))?;
        let mut connection = client
            .get_connection_with_timeout(Duration::from_secs(5))
            .map_err(|e| error("connect", e.to_string()))?;
        let meta = format!("{name}:meta");
        let _: i64 = redis::cmd("HSETNX")
            .arg(&meta)
            .arg("shards")
            .arg(self.shards)
            .query(&mut connection)
            .map_err(|e| error("create", e.to_string()))?;
        let shards: usize = redis::cmd("HGET")
            .arg(&meta)
            .arg("shards")
            .query(&mut connection)
            .map_err(|e| error("read the shard count", e.to_string()))?;
        let mut frontier = RedisFrontier {
            url: self.url,
            client,
            connection,
            name,
            shards: shards.max(1),
            lease: self.lease,
            grouping: self.grouping,
            per_shard: self.per_shard,
            worker: worker_id(),
            held: Vec::new(),
            settling: Vec::new(),
            settled_at: None,
            reclaimed: VecDeque::new(),
            in_flight: HashSet::new(),
            maintained: None,
            cursor: 0,
            scripts: Scripts::default(),
        };
        frontier.prepare()?;
        Ok(frontier)
    }
}

/// The SHA-1 names of the scripts, once loaded.
#[derive(Debug, Default, Clone)]
struct Scripts {
    put: String,
    complete: String,
    own: String,
}

/// A [`Frontier`] in Redis streams, shared by workers on any number of machines.
///
/// The keys of a frontier named `NAME`:
///
/// | key | type | holds |
/// |---|---|---|
/// | `NAME:meta` | hash | `shards`: the number of shards, fixed by the first worker |
/// | `NAME:seen` | set | the fingerprint of every URL ever put |
/// | `NAME:q:K` | stream, group `workers` | shard K's URLs not yet completed: queued, or pending (leased) |
/// | `NAME:owner:K` | string, expires | the worker that holds shard K |
/// | `NAME:workers` | sorted set | live workers, by their last heartbeat (Redis time, ms) |
/// | `NAME:done` | hash | fingerprint → `1` (a response) or `0` (failed): each URL's one final outcome |
/// | `NAME:stats:K` | hash | shard K's `done` and `failed` counts |
/// | `NAME:results` | stream | each final outcome once: `url`, `fp`, `ok`, `record` |
///
/// Putting a URL is one script: `SADD` to the seen set, and `XADD` to its shard only if it
/// was new. Each busy shard is held by one worker at a time (`SET NX PX`, renewed by its
/// heartbeat), each worker taking about its share of the busy shards; a worker leases with
/// `XREADGROUP` from the shards it holds, so a host's URLs are fetched by one worker and its
/// rate and pauses hold across the cluster. Completing is one script: `HSETNX` of the
/// outcome, the `XADD` to the results stream and the counts only if it was the first, then
/// `XACK` and `XDEL`. A worker that dies stops renewing: its shards' ownership runs out,
/// another worker takes them, and `XAUTOCLAIM` hands it the entries the dead one had leased
/// for longer than the lease time. Nothing is popped before it is done, so nothing is lost;
/// a URL fetched twice (its first worker only stalled) is recorded once.
///
/// When a shard moves between workers (one joins or leaves), the old holder finishes the
/// requests it has in flight while the new one starts: for that moment the shard's hosts
/// may see two workers. The scripts name keys as they run, so a frontier needs one Redis
/// server (with replicas if wanted), not a Redis Cluster. If Redis cannot be reached, each
/// call reconnects with backoff for up to 30 s before it fails.
///
/// ```no_run
/// use volley::frontier::{Frontier, RedisFrontier};
/// use volley::Url;
///
/// // The frontier `crawl` on a Redis server.
/// let mut frontier = RedisFrontier::open("redis://127.0.0.1:6379/crawl")?;
/// frontier.put(&[Url::parse("http://example.com/").unwrap()])?;
/// let leased = frontier.lease(100)?;
/// # Ok::<(), volley::frontier::FrontierError>(())
/// ```
pub struct RedisFrontier {
    url: String,
    client: redis::Client,
    connection: Connection,
    name: String,
    shards: usize,
    lease: Duration,
    grouping: HostGrouping,
    /// The most URLs one lease takes from one shard.
    per_shard: usize,
    /// This worker's name in the consumer groups and the ownership keys.
    worker: String,
    /// The shards this worker holds, as of the last heartbeat.
    held: Vec<usize>,
    /// Shards held whose previous holder still has leases in hand: nothing new is read from
    /// them until it has finished (or its leases are taken over), so that a host is never
    /// fetched by two workers at once.
    settling: Vec<usize>,
    settled_at: Option<Instant>,
    /// Entries taken over from other workers, to lease first.
    reclaimed: VecDeque<Leased>,
    /// The entries (shard, id) leased by this worker and not completed: ids are unique only
    /// within a shard's stream.
    in_flight: HashSet<(usize, String)>,
    maintained: Option<Instant>,
    cursor: usize,
    scripts: Scripts,
}

impl std::fmt::Debug for RedisFrontier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFrontier")
            .field("url", &self.url)
            .field("worker", &self.worker)
            .field("shards", &self.shards)
            .field("held", &self.held)
            .finish_non_exhaustive()
    }
}

/// `redis://HOST:PORT/NAME` → (`redis://HOST:PORT/`, `NAME`).
fn split_url(url: &str) -> Result<(String, String), FrontierError> {
    let error = |why: &str| FrontierError {
        frontier: url.to_owned(),
        doing: "parse the frontier's URL",
        why: why.to_owned(),
    };
    let parsed = Url::parse(url).map_err(|e| error(&e.to_string()))?;
    if parsed.scheme() != "redis" {
        return Err(error("the scheme is not redis://"));
    }
    let name = parsed.path().trim_start_matches('/');
    if name.is_empty() || name.contains('/') {
        return Err(error(
            "the path must be the frontier's name: redis://HOST:PORT/NAME",
        ));
    }
    let mut server = parsed.clone();
    server.set_path("/");
    Ok((server.to_string(), name.to_owned()))
}

/// A name for this worker, unique enough across machines: host, process and time.
fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{host}-{}-{:x}", std::process::id(), nanos & 0xffff_ffff)
}

impl RedisFrontier {
    /// Opens the frontier at `redis://HOST:PORT/NAME` with the default settings.
    pub fn open(url: &str) -> Result<RedisFrontier, FrontierError> {
        RedisFrontier::builder(url).open()
    }

    /// Settings for the frontier at `redis://HOST:PORT/NAME`.
    pub fn builder(url: &str) -> RedisFrontierBuilder {
        RedisFrontierBuilder {
            url: url.to_owned(),
            shards: 64,
            lease: Duration::from_secs(60),
            grouping: HostGrouping::Origin,
            per_shard: usize::MAX,
        }
    }

    /// This worker's name.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// The number of shards.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// The shards this worker holds, as of its last heartbeat.
    pub fn held(&self) -> &[usize] {
        &self.held
    }

    /// The final outcomes recorded, oldest first, from `after` (an entry id of the results
    /// stream; `"0"` for the start), at most `count`: `(entry id, URL, ok, record)`.
    pub fn results(
        &mut self,
        after: &str,
        count: usize,
    ) -> Result<Vec<(String, String, bool, String)>, FrontierError> {
        let key = self.key("results");
        let reply: Value = self.run("read the results", |c| {
            redis::cmd("XRANGE")
                .arg(&key)
                .arg(format!("({after}"))
                .arg("+")
                .arg("COUNT")
                .arg(count)
                .query(c)
        })?;
        let mut results = Vec::new();
        for (id, fields) in entries(&reply) {
            let field = |name: &str| {
                fields
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            results.push((id, field("url"), field("ok") == "1", field("record")));
        }
        Ok(results)
    }

    fn key(&self, what: &str) -> String {
        format!("{}:{what}", self.name)
    }

    fn shard_key(&self, shard: usize) -> String {
        format!("{}:q:{shard}", self.name)
    }

    /// Makes each shard's stream and consumer group if they are new, and loads the scripts.
    fn prepare(&mut self) -> Result<(), FrontierError> {
        let mut scripts = Scripts::default();
        for (text, slot) in [
            (PUT, &mut scripts.put),
            (COMPLETE, &mut scripts.complete),
            (OWN, &mut scripts.own),
        ] {
            *slot = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(text)
                .query(&mut self.connection)
                .map_err(|e| self.error("load its scripts", &e))?;
        }
        self.scripts = scripts;
        for shard in 0..self.shards {
            let created: redis::RedisResult<Value> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(self.shard_key(shard))
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query(&mut self.connection);
            match created {
                Ok(_) => {}
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => return Err(self.error("create its consumer groups", &e)),
            }
        }
        Ok(())
    }

    fn error(&self, doing: &'static str, e: &redis::RedisError) -> FrontierError {
        FrontierError {
            frontier: self.url.clone(),
            doing,
            why: e.to_string(),
        }
    }

    /// Runs `op`; if Redis cannot be reached, reconnects with backoff (for up to 30 s) and
    /// runs it again. Every operation of the frontier can be run twice: puts and completions
    /// are idempotent, and a lease repeated leases more.
    fn run<T>(
        &mut self,
        doing: &'static str,
        mut op: impl FnMut(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, FrontierError> {
        let started = Instant::now();
        let mut wait = Duration::from_millis(50);
        loop {
            match op(&mut self.connection) {
                Ok(value) => return Ok(value),
                Err(e) if is_connection_error(&e) && started.elapsed() < RECONNECT_FOR => {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(2));
                    if let Ok(connection) = self
                        .client
                        .get_connection_with_timeout(Duration::from_secs(2))
                    {
                        self.connection = connection;
                        // A restarted server has lost the scripts, perhaps the groups.
                        if let Err(e) = self.prepare() {
                            if started.elapsed() >= RECONNECT_FOR {
                                return Err(e);
                            }
                        }
                    }
                }
                Err(e) => return Err(self.error(doing, &e)),
            }
        }
    }

    /// The heartbeat: renews this worker's shards, takes its share of the busy ones, and
    /// takes over the entries leased too long ago in the shards it holds. At most once a
    /// tenth of the lease, unless `now`.
    fn maintain(&mut self, force: bool) -> Result<(), FrontierError> {
        let due = self.lease / 10;
        if !force && self.maintained.is_some_and(|at| at.elapsed() < due) {
            return Ok(());
        }
        self.maintained = Some(Instant::now());
        let start = self.cursor;
        self.cursor = self.cursor.wrapping_add(1);
        let (sha, prefix, worker) = (
            self.scripts.own.clone(),
            self.name.clone(),
            self.worker.clone(),
        );
        let lease_ms = self.lease.as_millis() as u64;
        let shards = self.shards;
        let spread = start + worker.bytes().map(usize::from).sum::<usize>();
        let (held, _taken): (Vec<usize>, Vec<usize>) = self.run("renew its shards", |c| {
            redis::cmd("EVALSHA")
                .arg(&sha)
                .arg(0)
                .arg(&prefix)
                .arg(&worker)
                .arg(lease_ms)
                .arg(shards)
                .arg(spread)
                .query(c)
        })?;
        self.held = held;
        // Every shard held is checked again for another worker's leases in hand.
        self.settling = self.held.clone();
        self.settled_at = None;
        // This worker's leases are alive: each one's idle time starts again (XCLAIM to
        // itself, JUSTID: the delivery count stays), so that no other worker takes them over
        // while this one has them in hand, however long they wait in its batch.
        let mut mine: Vec<(usize, &String)> =
            self.in_flight.iter().map(|(k, id)| (*k, id)).collect();
        mine.sort_unstable();
        let touches: Vec<(String, Vec<String>)> = mine
            .chunk_by(|a, b| a.0 == b.0)
            .flat_map(|group| {
                let key = self.shard_key(group[0].0);
                group
                    .chunks(1000)
                    .map(|ids| {
                        (
                            key.clone(),
                            ids.iter().map(|(_, id)| (*id).clone()).collect(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        for (key, ids) in touches {
            let worker = self.worker.clone();
            let _: Value = self.run("renew its leases", |c| {
                let mut cmd = redis::cmd("XCLAIM");
                cmd.arg(&key).arg(GROUP).arg(&worker).arg(0);
                for id in &ids {
                    cmd.arg(id);
                }
                cmd.arg("JUSTID").query(c)
            })?;
        }
        // Entries leased longer than the lease in a shard this worker holds belong to a
        // worker that died or stalled (or are this worker's own, still in flight).
        for shard in self.held.clone() {
            let key = self.shard_key(shard);
            let worker = self.worker.clone();
            let reply: Value = self.run("take over expired leases", |c| {
                redis::cmd("XAUTOCLAIM")
                    .arg(&key)
                    .arg(GROUP)
                    .arg(&worker)
                    .arg(lease_ms)
                    .arg("0-0")
                    .arg("COUNT")
                    .arg(1000)
                    .query(c)
            })?;
            let claimed = match &reply {
                Value::Array(parts) if parts.len() >= 2 => entries(&parts[1]),
                _ => Vec::new(),
            };
            for (id, fields) in claimed {
                if self.in_flight.contains(&(shard, id.clone())) {
                    continue; // this worker's own, still being fetched
                }
                if let Some(leased) = self.leased(shard, id, &fields, 2) {
                    self.reclaimed.push_back(leased);
                }
            }
        }
        Ok(())
    }

    /// Looks again (at most every 50 ms) at the shards still settling: one whose entries are
    /// pending with this worker only (or none) is ready.
    fn settle(&mut self) -> Result<(), FrontierError> {
        if self.settling.is_empty()
            || self
                .settled_at
                .is_some_and(|at| at.elapsed() < Duration::from_millis(50))
        {
            return Ok(());
        }
        self.settled_at = Some(Instant::now());
        let keys: Vec<String> = self.settling.iter().map(|&k| self.shard_key(k)).collect();
        let replies: Vec<Value> = self.run("look at the shards' leases", |c| {
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("XPENDING").arg(key).arg(GROUP);
            }
            pipe.query(c)
        })?;
        let worker = self.worker.clone();
        let others_hold = |reply: &Value| -> bool {
            // [count, first id, last id, [[consumer, count], ...]]
            let Value::Array(parts) = reply else {
                return false;
            };
            let Some(Value::Array(consumers)) = parts.get(3) else {
                return false;
            };
            consumers.iter().any(|c| match c {
                Value::Array(pair) => pair
                    .first()
                    .and_then(text)
                    .is_some_and(|name| name != worker),
                _ => false,
            })
        };
        let still: Vec<usize> = self
            .settling
            .iter()
            .zip(&replies)
            .filter(|(_, reply)| others_hold(reply))
            .map(|(&k, _)| k)
            .collect();
        self.settling = still;
        Ok(())
    }

    /// A lease of entry `id` of `shard` with the entry's `fields`.
    fn leased(
        &mut self,
        shard: usize,
        id: String,
        fields: &[(String, String)],
        deliveries: u64,
    ) -> Option<Leased> {
        let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let url = Url::parse(field("u")?).ok()?;
        let fingerprint = field("f")
            .and_then(|f| f.parse::<Fingerprint>().ok())
            .unwrap_or_else(|| fingerprint(&url));
        self.in_flight.insert((shard, id.clone()));
        Some(Leased {
            url,
            fingerprint,
            shard,
            deliveries,
            id,
        })
    }
}

/// True for errors that a new connection may cure.
fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

/// The text of a reply value.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The streams of an `XREADGROUP` reply, each with its entries: `[[key, entries], ...]`
/// (RESP2) or `{key: entries}` (RESP3); none when nothing was new.
fn streams(reply: Value) -> Vec<(String, Value)> {
    match reply {
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|stream| match stream {
                Value::Array(mut pair) if pair.len() == 2 => {
                    let entries = pair.pop()?;
                    Some((text(&pair[0])?, entries))
                }
                _ => None,
            })
            .collect(),
        Value::Map(map) => map
            .into_iter()
            .filter_map(|(key, entries)| Some((text(&key)?, entries)))
            .collect(),
        _ => Vec::new(),
    }
}

/// The entries of a stream reply, `[[id, [field, value, ...]], ...]`: deleted ones (nil)
/// are left out.
fn entries(value: &Value) -> Vec<(String, Vec<(String, String)>)> {
    let Value::Array(items) = value else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let Value::Array(pair) = item else {
                return None;
            };
            let id = text(pair.first()?)?;
            let fields = match pair.get(1)? {
                Value::Array(flat) => flat
                    .chunks(2)
                    .filter_map(|kv| Some((text(kv.first()?)?, text(kv.get(1)?)?)))
                    .collect(),
                Value::Map(map) => map
                    .iter()
                    .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
                    .collect(),
                _ => return None,
            };
            Some((id, fields))
        })
        .collect()
}

impl Frontier for RedisFrontier {
    fn put(&mut self, urls: &[Url]) -> Result<usize, FrontierError> {
        let seen = self.key("seen");
        let sha = self.scripts.put.clone();
        let mut added = 0;
        for chunk in urls.chunks(1000) {
            let keys: Vec<(String, String, String)> = chunk
                .iter()
                .map(|url| {
                    let shard = shard_of(url, self.grouping, self.shards);
                    let print = fingerprint(url).to_string();
                    (self.shard_key(shard), print, url.to_string())
                })
                .collect();
            let results: Vec<i64> = self.run("put URLs", |c| {
                let mut pipe = redis::pipe();
                for (shard, print, url) in &keys {
                    pipe.cmd("EVALSHA")
                        .arg(&sha)
                        .arg(2)
                        .arg(&seen)
                        .arg(shard)
                        .arg(print)
                        .arg(url);
                }
                pipe.query(c)
            })?;
            added += results.iter().filter(|&&n| n == 1).count();
        }
        Ok(added)
    }

    fn lease(&mut self, max: usize) -> Result<Vec<Leased>, FrontierError> {
        self.maintain(false)?;
        let mut leased = Vec::new();
        while leased.len() < max {
            let Some(next) = self.reclaimed.pop_front() else {
                break;
            };
            leased.push(next);
        }
        self.settle()?;
        // Shards whose URLs in hand already reach `per_shard` wait for the next lease.
        let mut in_hand = std::collections::HashMap::<usize, usize>::new();
        if self.per_shard != usize::MAX {
            for (shard, _) in &self.in_flight {
                *in_hand.entry(*shard).or_default() += 1;
            }
        }
        let ready: Vec<usize> = self
            .held
            .iter()
            .copied()
            .filter(|k| !self.settling.contains(k))
            .filter(|k| in_hand.get(k).copied().unwrap_or(0) < self.per_shard)
            .collect();
        if leased.len() >= max || ready.is_empty() {
            return Ok(leased);
        }
        // One XREADGROUP over every shard held: each gives up to its share of what is left.
        let keys: Vec<String> = ready.iter().map(|&k| self.shard_key(k)).collect();
        let worker = self.worker.clone();
        let each = (max - leased.len())
            .div_ceil(keys.len())
            .clamp(1, self.per_shard);
        let reply: Value = self.run("lease URLs", |c| {
            let mut cmd = redis::cmd("XREADGROUP");
            cmd.arg("GROUP")
                .arg(GROUP)
                .arg(&worker)
                .arg("COUNT")
                .arg(each)
                .arg("STREAMS");
            for key in &keys {
                cmd.arg(key);
            }
            for _ in &keys {
                cmd.arg(">");
            }
            cmd.query(c)
        })?;
        for (key, entries_of_stream) in streams(reply) {
            let Some(shard) = key.rsplit(':').next().and_then(|k| k.parse::<usize>().ok()) else {
                continue;
            };
            for (id, fields) in entries(&entries_of_stream) {
                if let Some(next) = self.leased(shard, id, &fields, 1) {
                    leased.push(next);
                }
            }
        }
        Ok(leased)
    }

    fn complete(&mut self, done: &[(Leased, Outcome)]) -> Result<usize, FrontierError> {
        let (done_key, results) = (self.key("done"), self.key("results"));
        let sha = self.scripts.complete.clone();
        let mut recorded = 0;
        for chunk in done.chunks(500) {
            let calls: Vec<(String, String, &Leased, &Outcome)> = chunk
                .iter()
                .map(|(leased, outcome)| {
                    (
                        self.key(&format!("stats:{}", leased.shard)),
                        self.shard_key(leased.shard),
                        leased,
                        outcome,
                    )
                })
                .collect();
            let news: Vec<i64> = self.run("complete URLs", |c| {
                let mut pipe = redis::pipe();
                for (stats, shard, leased, outcome) in &calls {
                    pipe.cmd("EVALSHA")
                        .arg(&sha)
                        .arg(4)
                        .arg(&done_key)
                        .arg(&results)
                        .arg(stats)
                        .arg(shard)
                        .arg(leased.fingerprint.to_string())
                        .arg(if outcome.ok { "1" } else { "0" })
                        .arg(leased.url.as_str())
                        .arg(&outcome.record)
                        .arg(&leased.id);
                }
                pipe.query(c)
            })?;
            recorded += news.iter().filter(|&&n| n == 1).count();
            for (leased, _) in chunk {
                self.in_flight.remove(&(leased.shard, leased.id.clone()));
            }
        }
        Ok(recorded)
    }

    fn renew(&mut self) -> Result<(), FrontierError> {
        self.maintain(true)
    }

    fn is_drained(&mut self) -> Result<bool, FrontierError> {
        let keys: Vec<String> = (0..self.shards).map(|k| self.shard_key(k)).collect();
        let lengths: Vec<u64> = self.run("count the queued URLs", |c| {
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("XLEN").arg(key);
            }
            pipe.query(c)
        })?;
        Ok(lengths.iter().all(|&n| n == 0) && self.reclaimed.is_empty())
    }

    fn status(&mut self) -> Result<Status, FrontierError> {
        let mut shards = Vec::with_capacity(self.shards);
        for shard in 0..self.shards {
            let (key, stats) = (self.shard_key(shard), self.key(&format!("stats:{shard}")));
            let (length, pending, counts): (u64, Value, Vec<Option<u64>>) =
                self.run("read the status", |c| {
                    redis::pipe()
                        .cmd("XLEN")
                        .arg(&key)
                        .cmd("XPENDING")
                        .arg(&key)
                        .arg(GROUP)
                        .cmd("HMGET")
                        .arg(&stats)
                        .arg("done")
                        .arg("failed")
                        .query(c)
                })?;
            let leased = match &pending {
                Value::Array(parts) => parts
                    .first()
                    .and_then(text)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
                _ => 0,
            };
            shards.push(ShardStatus {
                queued: length.saturating_sub(leased),
                leased,
                done: counts.first().copied().flatten().unwrap_or(0),
                failed: counts.get(1).copied().flatten().unwrap_or(0),
            });
        }
        Ok(Status { shards })
    }
}
