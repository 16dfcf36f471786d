//! Per-team rate limits: a token bucket per team, for job submissions and for the gateway's
//! RPCs, so one team's runaway pipeline or notebook cannot starve the others.
//!
//! Buckets live in this replica's memory: with N replicas behind a load balancer a team gets
//! up to N times the configured rate, which the operator docs say. A refusal carries how long
//! until a token is back, for `Retry-After` and the gRPC message.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::error::Error;

/// A rate: `perSecond` tokens refill each second, up to `burst` at once. `perSecond: 0` turns
/// the limit off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rate {
    pub per_second: f64,
    /// Defaults to one second's worth (at least 1).
    #[serde(default)]
    pub burst: Option<u32>,
}

impl Rate {
    fn burst(&self) -> f64 {
        self.burst
            .map_or(self.per_second.ceil().max(1.0), f64::from)
            .max(1.0)
    }
}

/// Every per-team limit of `limits:`, shared by the services, the gateway and the reconciler.
pub struct Limits {
    pub submits: RateLimiter,
    pub gateway_rpcs: RateLimiter,
    /// 0: no cap.
    pub max_running_jobs_per_team: u32,
    /// 0: no cap.
    pub max_sessions_per_team: u32,
}

impl Limits {
    pub fn new(config: &crate::config::LimitsConfig) -> Self {
        Limits {
            submits: RateLimiter::new(config.submits, "job submissions", "limits.submits"),
            gateway_rpcs: RateLimiter::new(
                config.gateway_rpcs,
                "Spark Connect RPCs",
                "limits.gatewayRpcs",
            ),
            max_running_jobs_per_team: config.max_running_jobs_per_team,
            max_sessions_per_team: config.max_sessions_per_team,
        }
    }
}

/// Forgotten teams' buckets are dropped once the map holds this many (a full bucket and a
/// missing one are the same thing).
const MAX_TEAMS: usize = 10_000;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets, one per team, for one kind of request.
pub struct RateLimiter {
    rate: Rate,
    /// Says what is limited, in refusals: "job submissions", "Spark Connect RPCs".
    what: &'static str,
    /// The config key, so a refusal says what an operator would change.
    key: &'static str,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(rate: Rate, what: &'static str, key: &'static str) -> Self {
        RateLimiter {
            rate,
            what,
            key,
            buckets: Mutex::default(),
        }
    }

    /// Takes a token of `team`'s bucket, or says how long until one is back.
    pub fn take(&self, team: &str) -> Result<(), Duration> {
        if self.rate.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let burst = self.rate.burst();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TEAMS && !buckets.contains_key(team) {
            // Full buckets carry no information: dropping them changes no answer.
            buckets.retain(|_, b| refilled(b, now, self.rate.per_second, burst) < burst);
        }
        let bucket = buckets.entry(team.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.tokens = refilled(bucket, now, self.rate.per_second, burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64(
            (1.0 - bucket.tokens) / self.rate.per_second,
        ))
    }

    /// [`Self::take`] as the domain error: 429 over HTTP, RESOURCE_EXHAUSTED over gRPC.
    pub fn admit(&self, team: &str) -> Result<(), Error> {
        self.take(team).map_err(|wait| {
            metrics::counter!("sk8_rate_limited_total", "what" => self.what).increment(1);
            Error::TooManyRequests {
                message: format!(
                    "team {team} is over its rate of {} {} per second ({}); retry in {} ms",
                    self.rate.per_second,
                    self.what,
                    self.key,
                    wait.as_millis().max(1)
                ),
                retry_after: Some(wait),
            }
        })
    }
}

fn refilled(bucket: &Bucket, now: Instant, per_second: f64, burst: f64) -> f64 {
    let elapsed = now.duration_since(bucket.at).as_secs_f64();
    (bucket.tokens + elapsed * per_second).min(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: f64, burst: Option<u32>) -> RateLimiter {
        RateLimiter::new(Rate { per_second, burst }, "things", "limits.things")
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let limiter = limiter(10.0, Some(3));
        for _ in 0..3 {
            assert!(limiter.take("a").is_ok());
        }
        let wait = limiter.take("a").unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        std::thread::sleep(Duration::from_millis(120));
        assert!(limiter.take("a").is_ok());
    }

    #[test]
    fn teams_have_buckets_of_their_own() {
        let limiter = limiter(1.0, Some(1));
        assert!(limiter.take("a").is_ok());
        assert!(limiter.take("a").is_err());
        assert!(limiter.take("b").is_ok());
    }

    #[test]
    fn zero_is_unlimited() {
        let limiter = limiter(0.0, None);
        for _ in 0..1000 {
            assert!(limiter.take("a").is_ok());
        }
    }

    #[test]
    fn a_refusal_says_when_and_what_to_change() {
        let limiter = limiter(2.0, Some(1));
        limiter.admit("a").unwrap();
        let err = limiter.admit("a").unwrap_err();
        let Error::TooManyRequests {
            message,
            retry_after,
        } = err
        else {
            panic!("not a 429: {err:?}");
        };
        assert!(message.contains("limits.things"), "{message}");
        assert!(retry_after.unwrap() <= Duration::from_millis(500));
    }
}
