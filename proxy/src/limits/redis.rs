//! Counters in Redis, shared by every proxy replica (`--redis-url`).
//!
//! Admission is one Lua script (atomic on the server: read every bucket, decide, count the
//! request), mirroring [`super::decide`]. Usage is added with one `MULTI` pipeline of
//! `INCRBY` + `EXPIRE`. Keys expire with their window, so nothing needs cleaning up:
//! `bgw:<policy>|<subject>:r:<minute>`, `...:t:<minute>`, `...:c:<day>`. Single Redis (or a
//! primary behind Sentinel); Redis Cluster is not supported, as one script spans buckets.

use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

use super::{Bucket, Counts, Exceeded, Verdict, Window};

/// How long one Redis round trip may take before the store counts as unavailable.
const TIMEOUT: Duration = Duration::from_millis(1000);
/// Minute counters outlive their minute a little, for requests that end in the next one.
const MINUTE_TTL: u64 = 120;
/// Day counters outlive their day a little, for the same reason.
const DAY_TTL: u64 = 2 * 86_400;

/// KEYS: 3 per bucket (requests, tokens, spend); ARGV: 3 per bucket (limits, -1 for none),
/// then the minute TTL. Returns `{1, r1, t1, c1, r2, ...}` or `{0, index, limit, r, t, c}`.
const ADMIT: &str = r"
local n = #KEYS / 3
local before = {}
for i = 0, n - 1 do
  local r = tonumber(redis.call('GET', KEYS[i * 3 + 1]) or '0')
  local t = tonumber(redis.call('GET', KEYS[i * 3 + 2]) or '0')
  local c = tonumber(redis.call('GET', KEYS[i * 3 + 3]) or '0')
  local rpm, tpm, budget = tonumber(ARGV[i * 3 + 1]), tonumber(ARGV[i * 3 + 2]), tonumber(ARGV[i * 3 + 3])
  if rpm >= 0 and r >= rpm then return {0, i, 1, r, t, c} end
  if tpm >= 0 and t >= tpm then return {0, i, 2, r, t, c} end
  if budget >= 0 and c >= budget then return {0, i, 3, r, t, c} end
  before[i] = {t, c}
end
local out = {1}
for i = 0, n - 1 do
  local r = redis.call('INCR', KEYS[i * 3 + 1])
  if r == 1 then redis.call('EXPIRE', KEYS[i * 3 + 1], ARGV[n * 3 + 1]) end
  out[#out + 1] = r
  out[#out + 1] = before[i][1]
  out[#out + 1] = before[i][2]
end
return out
";

/// A lazily connected, self-reconnecting Redis client.
pub struct RedisCounters {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    admit: redis::Script,
}

impl RedisCounters {
    /// A client for `url`; nothing connects until the first request.
    pub fn new(url: &str) -> Result<RedisCounters, String> {
        let client = redis::Client::open(url).map_err(|e| format!("invalid --redis-url: {e}"))?;
        Ok(RedisCounters { client, conn: OnceCell::new(), admit: redis::Script::new(ADMIT) })
    }

    async fn connection(&self) -> Result<ConnectionManager, String> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                match tokio::time::timeout(TIMEOUT, self.client.get_connection_manager()).await {
                    Ok(Ok(conn)) => Ok(conn),
                    Ok(Err(e)) => Err(format!("cannot connect to Redis: {e}")),
                    Err(_) => Err("cannot connect to Redis: timed out".to_owned()),
                }
            })
            .await?;
        Ok(conn.clone())
    }

    /// Runs the admission script.
    pub async fn admit(&self, buckets: &[Bucket], window: Window) -> Result<Verdict, String> {
        let mut conn = self.connection().await?;
        let mut call = self.admit.prepare_invoke();
        for b in buckets {
            call.key(key(b, 'r', window.minute)).key(key(b, 't', window.minute)).key(key(b, 'c', window.day));
        }
        let limit = |l: Option<u64>| l.map_or(-1, |v| v as i64);
        for b in buckets {
            call.arg(limit(b.requests_per_minute))
                .arg(limit(b.tokens_per_minute))
                .arg(limit(b.budget_nanos_per_day));
        }
        call.arg(MINUTE_TTL);
        let reply: Vec<i64> = tokio::time::timeout(TIMEOUT, call.invoke_async(&mut conn))
            .await
            .map_err(|_| "Redis timed out".to_owned())?
            .map_err(|e| format!("Redis admission failed: {e}"))?;
        parse_verdict(&reply, buckets.len())
    }

    /// Adds usage in the background.
    pub fn add(&self, buckets: &[Bucket], window: Window, tokens: u64, nanos: u64) {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for b in buckets {
            let (t, c) = (key(b, 't', window.minute), key(b, 'c', window.day));
            pipe.incr(&t, tokens).ignore().expire(&t, MINUTE_TTL as i64).ignore();
            pipe.incr(&c, nanos).ignore().expire(&c, DAY_TTL as i64).ignore();
        }
        let conn = self.conn.get().cloned();
        let client = self.client.clone();
        tokio::spawn(async move {
            let conn = match conn {
                Some(conn) => Ok(conn),
                None => client.get_connection_manager().await,
            };
            let result = match conn {
                Ok(mut conn) => tokio::time::timeout(TIMEOUT, pipe.query_async::<()>(&mut conn))
                    .await
                    .unwrap_or_else(|_| Err(redis::RedisError::from((redis::ErrorKind::Io, "timed out")))),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "usage not added to the Redis limit counters");
            }
        });
    }
}

fn key(bucket: &Bucket, kind: char, window: u64) -> String {
    format!("bgw:{}:{kind}:{window}", bucket.key)
}

fn parse_verdict(reply: &[i64], buckets: usize) -> Result<Verdict, String> {
    let counts = |r: &[i64]| Counts {
        requests: r[0].max(0) as u64,
        tokens: r[1].max(0) as u64,
        spent_nanos: r[2].max(0) as u64,
    };
    match reply {
        [1, rest @ ..] if rest.len() == buckets * 3 => {
            Ok(Verdict::Admitted(rest.chunks(3).map(counts).collect()))
        }
        [0, index, limit, rest @ ..] if rest.len() == 3 && (*index as usize) < buckets => {
            let limit = match limit {
                1 => Exceeded::Requests,
                2 => Exceeded::Tokens,
                _ => Exceeded::Budget,
            };
            Ok(Verdict::Refused { index: *index as usize, limit, counts: counts(rest) })
        }
        _ => Err(format!("unexpected Redis admission reply {reply:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_from_script_replies() {
        assert_eq!(
            parse_verdict(&[1, 3, 10, 5], 1),
            Ok(Verdict::Admitted(vec![Counts { requests: 3, tokens: 10, spent_nanos: 5 }]))
        );
        assert_eq!(
            parse_verdict(&[0, 1, 2, 4, 100, 0], 2),
            Ok(Verdict::Refused {
                index: 1,
                limit: Exceeded::Tokens,
                counts: Counts { requests: 4, tokens: 100, spent_nanos: 0 }
            })
        );
        assert!(parse_verdict(&[1, 3], 1).is_err());
    }
}
