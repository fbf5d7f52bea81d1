//! Leader election on a coordination.k8s.io Lease, so two replicas are safe: only the holder
//! renders, writes and reconciles. The decision is pure ([`decide`]); [`Elector`] does the I/O
//! with optimistic concurrency (a lost race is a 409, not a second leader).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::{Api, Client};

/// How long a lease is valid without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews (and a candidate retries).
pub const RENEW_INTERVAL: Duration = Duration::from_secs(5);

/// What to do with the Lease as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// We hold it: renew.
    Renew,
    /// Nobody holds it or the holder let it expire: take it over.
    Acquire,
    /// Someone else holds a valid lease.
    Wait {
        /// The current holder.
        holder: String,
    },
}

/// The decision for `identity` given the Lease spec at `now`.
pub fn decide(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else { return Decision::Acquire };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder == identity {
        return Decision::Renew;
    }
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
    let expired = spec.renew_time.as_ref().is_none_or(|renewed| renewed.0 + duration < now);
    if holder.is_empty() || expired {
        Decision::Acquire
    } else {
        Decision::Wait { holder: holder.to_string() }
    }
}

/// The spec after `decision` by `identity` at `now`.
pub fn next_spec(
    previous: Option<&LeaseSpec>,
    decision: &Decision,
    identity: &str,
    now: Timestamp,
) -> LeaseSpec {
    let mut spec = previous.cloned().unwrap_or_default();
    spec.lease_duration_seconds = Some(LEASE_DURATION.as_secs() as i32);
    spec.renew_time = Some(MicroTime(now));
    if *decision == Decision::Acquire {
        spec.holder_identity = Some(identity.to_string());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(previous.map_or(0, |p| p.lease_transitions.unwrap_or(0) + 1));
    }
    spec
}

/// Takes and keeps the Lease `<release>-operator`.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
}

impl Elector {
    /// An elector for Lease `name` in `namespace`, holding it as `identity` (the pod name).
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> Self {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
        }
    }

    /// One round: creates, renews or takes over the Lease; true when we hold it afterwards.
    pub async fn try_hold(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.name).await?;
        let decision = decide(current.as_ref().and_then(|l| l.spec.as_ref()), &self.identity, now);
        if let Decision::Wait { .. } = decision {
            return Ok(false);
        }
        let spec = next_spec(current.as_ref().and_then(|l| l.spec.as_ref()), &decision, &self.identity, now);
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                // resourceVersion stays set: a concurrent writer makes this a 409.
                lease.spec = Some(spec);
                self.api.replace(&self.name, &PostParams::default(), &lease).await
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up (on shutdown), so a standby replica takes over without waiting for it
    /// to expire; a Lease held by someone else is left alone.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else { return Ok(()) };
        let Some(spec) = lease.spec.as_mut().filter(|s| s.holder_identity.as_deref() == Some(&self.identity))
        else {
            return Ok(());
        };
        spec.holder_identity = None;
        spec.acquire_time = None;
        spec.renew_time = None;
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_hold().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, lease = %self.name, "cannot read or write the Lease"),
            }
            tokio::time::sleep(RENEW_INTERVAL).await;
        }
    }

    /// Renews the Lease until it is lost (another holder, or no successful renewal within the
    /// lease duration); then returns.
    pub async fn hold(&self) {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(RENEW_INTERVAL).await;
            match self.try_hold().await {
                Ok(true) => last_renewal = tokio::time::Instant::now(),
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(error = %e, lease = %self.name, "cannot renew the Lease");
                    // Stop before the lease can expire: a second leader may take over then.
                    if last_renewal.elapsed() + RENEW_INTERVAL >= LEASE_DURATION {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.to_string()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
            lease_transitions: Some(3),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn holders_renew_others_wait_until_expiry() {
        let now = Timestamp::from_second(1_000).unwrap();
        assert_eq!(decide(None, "a", now), Decision::Acquire);
        assert_eq!(decide(Some(&spec("a", 999)), "a", now), Decision::Renew);
        assert_eq!(decide(Some(&spec("b", 990)), "a", now), Decision::Wait { holder: "b".into() });
        assert_eq!(decide(Some(&spec("b", 984)), "a", now), Decision::Acquire, "renewed 16 s ago: expired");
        assert_eq!(decide(Some(&spec("", 999)), "a", now), Decision::Acquire, "released");
    }

    #[test]
    fn taking_over_counts_a_transition_renewing_does_not() {
        let now = Timestamp::from_second(1_000).unwrap();
        let taken = next_spec(Some(&spec("b", 900)), &Decision::Acquire, "a", now);
        assert_eq!(
            (taken.holder_identity.as_deref(), taken.lease_transitions, taken.acquire_time.map(|t| t.0)),
            (Some("a"), Some(4), Some(now))
        );
        let renewed = next_spec(Some(&spec("a", 995)), &Decision::Renew, "a", now);
        assert_eq!((renewed.lease_transitions, renewed.renew_time.map(|t| t.0)), (Some(3), Some(now)));
        assert_eq!(next_spec(None, &Decision::Acquire, "a", now).lease_transitions, Some(0));
    }
}
