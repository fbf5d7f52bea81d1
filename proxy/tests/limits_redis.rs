//! Global limits in a real `redis-server` (Debian package; `scripts/test` installs it): two
//! limiters, as two replicas would have, share one set of counters.

use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use api::config::{Limits, Policy, SubjectRef};
use proxy::auth::Subject;
use proxy::limits::Limiter;
use proxy::policy::PolicySet;

/// A `redis-server` on a free loopback port, killed when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        let port = StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let redis = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .map(|child| Redis { child, port })
            .expect("redis-server runs (apt-get install redis-server; scripts/test installs it)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return redis;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not listen on {port}");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn policies(limits: Limits) -> PolicySet {
    PolicySet::new(&[Policy {
        name: "ns/limited".into(),
        subjects: vec![SubjectRef::Team("t".into())],
        models: vec!["demo/*".into()],
        limits: Some(limits),
    }])
}

fn user(name: &str) -> Subject {
    Subject::user(name, vec!["t".into()])
}

#[tokio::test]
async fn two_replicas_share_request_limits() {
    let redis = Redis::start();
    let (a, b) = (Limiter::redis(&redis.url(), false).unwrap(), Limiter::redis(&redis.url(), false).unwrap());
    let set = policies(Limits { requests_per_minute: Some(3), ..Default::default() });
    let alice = user("alice");
    // Retried once if the minute rolls over in the middle.
    for attempt in 0..2 {
        let mut admitted = 0;
        for limiter in [&a, &b, &a, &b, &a] {
            if limiter.admit(&alice, &set, "demo/m").await.is_ok() {
                admitted += 1;
            }
        }
        if admitted == 3 || attempt == 1 {
            assert_eq!(admitted, 3, "three requests per minute across both replicas");
            break;
        }
    }
    let refused = b.admit(&alice, &set, "demo/m").await.unwrap_err();
    assert_eq!(refused.status.as_u16(), 429);
    assert_eq!(refused.headers.as_deref().unwrap().get("x-ratelimit-remaining-requests").unwrap(), "0");
    // Another subject has its own counters.
    let ok = a.admit(&user("bob"), &set, "demo/m").await.unwrap();
    assert_eq!(ok.headers().get("x-ratelimit-remaining-requests").unwrap(), "2");
}

#[tokio::test]
async fn usage_added_on_one_replica_limits_the_other() {
    let redis = Redis::start();
    let (a, b) = (Limiter::redis(&redis.url(), false).unwrap(), Limiter::redis(&redis.url(), false).unwrap());
    let set = policies(Limits { budget_usd_per_day: Some(1.0), ..Default::default() });
    let alice = user("alice");
    let admission = a.admit(&alice, &set, "demo/m").await.unwrap();
    a.add(&admission, 100, 1.5);
    // The update runs in the background: wait until the other replica sees it.
    for _ in 0..100 {
        if let Err(e) = b.admit(&alice, &set, "demo/m").await {
            assert_eq!(e.kind, "insufficient_quota");
            assert!(e.message.contains("Limit $1.000000, Used $1.500000"), "{}", e.message);
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("spend added on one replica never limited the other");
}

#[tokio::test]
async fn unreachable_redis_fails_open_or_closed_by_flag() {
    let port = StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let set = policies(Limits { requests_per_minute: Some(1), ..Default::default() });
    let open = Limiter::redis(&url, true).unwrap();
    let admitted = open.admit(&user("alice"), &set, "demo/m").await.unwrap();
    assert!(!admitted.is_limited() && admitted.headers().is_empty());
    let closed = Limiter::redis(&url, false).unwrap();
    let e = closed.admit(&user("alice"), &set, "demo/m").await.unwrap_err();
    assert_eq!(e.status.as_u16(), 503);
    assert!(!e.message.contains(&port.to_string()), "no infrastructure details to callers: {}", e.message);
}
