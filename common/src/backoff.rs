//! Reconnecting: exponential backoff with jitter, and the loop every long-lived stream to the
//! cluster runs (the agent's event uplink and ban-list watch): try a node, and when its session
//! fails, wait a little longer each time and move on to the next node.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// Exponential backoff: `base`, doubled after each failure up to `max`, plus up to half again
/// of random jitter so a fleet of agents does not reconnect in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            current: base,
        }
    }

    /// The wait before the next attempt; each call doubles the one after (up to `max`).
    pub fn next_delay(&mut self) -> Duration {
        let half = self.current.as_millis() as u64 / 2;
        let jitter = Duration::from_millis(rand::random::<u64>() % (half + 1));
        let d = self.current + jitter;
        self.current = (self.current * 2).min(self.max);
        d
    }

    /// Back to the base after a session that worked.
    pub fn reset(&mut self) {
        self.current = self.base;
    }
}

impl Default for Backoff {
    /// 100 ms, doubling to 5 s.
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(5))
    }
}

/// A session that lasted this long counts as having worked, even if it then failed.
pub const WORKED: Duration = Duration::from_secs(1);

/// Runs `session` against the nodes in turn, forever: a session that returns `Ok` ended cleanly
/// and is started again on the same node at once; one that fails moves to the next node after
/// the backoff. `what` names the stream in the warning logged for each failure.
pub async fn reconnect_forever<F, Fut, E>(what: &str, nodes: &[String], mut session: F) -> !
where
    F: FnMut(&str) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    assert!(
        !nodes.is_empty(),
        "reconnect_forever needs at least one node"
    );
    let mut node = 0usize;
    let mut backoff = Backoff::default();
    loop {
        let addr = &nodes[node % nodes.len()];
        let started = tokio::time::Instant::now();
        match session(addr).await {
            Ok(()) => backoff.reset(),
            Err(e) => {
                tracing::warn!("{what} from {addr}: {e:#}; trying the next node");
                node = node.wrapping_add(1);
                // A session that lived a while worked: its failure (a node killed under it)
                // starts the backoff afresh, or each failover would wait longer than the last.
                if started.elapsed() >= WORKED {
                    backoff.reset();
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::time::Instant;

    #[test]
    fn doubles_with_bounded_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let bounds = [(100, 150), (200, 300), (400, 600), (500, 750), (500, 750)];
        for (lo, hi) in bounds {
            let d = b.next_delay().as_millis() as u64;
            assert!((lo..=hi).contains(&d), "{d} not in {lo}..={hi}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(150));
    }

    #[tokio::test(start_paused = true)]
    async fn rotates_over_nodes_and_waits_longer_after_each_failure() {
        let nodes: Vec<String> = ["a:1", "b:1", "c:1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let seen: Arc<Mutex<Vec<(String, Duration)>>> = Arc::default();
        let start = Instant::now();
        let log = seen.clone();
        let task = tokio::spawn(async move {
            reconnect_forever("test stream", &nodes, |addr| {
                let log = log.clone();
                let addr = addr.to_string();
                async move {
                    let mut l = log.lock().unwrap();
                    l.push((addr, start.elapsed()));
                    // The fourth attempt works once, then fails again.
                    if l.len() == 4 {
                        Ok(())
                    } else {
                        Err("refused")
                    }
                }
            })
            .await
        });
        while seen.lock().unwrap().len() < 7 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        task.abort();
        let s = seen.lock().unwrap().clone();
        let order: Vec<&str> = s.iter().map(|(a, _)| a.as_str()).collect();
        // Failures rotate; a clean end retries the same node at once.
        assert_eq!(
            order[..7],
            ["a:1", "b:1", "c:1", "a:1", "a:1", "b:1", "c:1"]
        );
        let gap = |i: usize| (s[i].1 - s[i - 1].1).as_millis() as u64;
        assert!((100..=160).contains(&gap(1)), "{}", gap(1));
        assert!((200..=310).contains(&gap(2)), "{}", gap(2));
        assert!((400..=610).contains(&gap(3)), "{}", gap(3));
        assert!(gap(4) <= 10, "clean end restarts at once: {}", gap(4));
        assert!(
            (100..=160).contains(&gap(5)),
            "reset after success: {}",
            gap(5)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_session_that_fails_starts_the_backoff_afresh() {
        let nodes = vec!["a:1".to_string(), "b:1".to_string()];
        let seen: Arc<Mutex<Vec<Duration>>> = Arc::default();
        let start = Instant::now();
        let log = seen.clone();
        let task = tokio::spawn(async move {
            reconnect_forever("test stream", &nodes, |_| {
                let log = log.clone();
                async move {
                    let n = {
                        let mut l = log.lock().unwrap();
                        l.push(start.elapsed());
                        l.len()
                    };
                    // Three quick failures, then sessions that run 2 s and fail (failovers).
                    if n > 3 {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                    Err::<(), _>("node killed")
                }
            })
            .await
        });
        while seen.lock().unwrap().len() < 7 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        task.abort();
        let s = seen.lock().unwrap().clone();
        let gap = |i: usize| (s[i] - s[i - 1]).as_millis() as u64;
        assert!(
            (400..=610).contains(&gap(3)),
            "grown after quick failures: {}",
            gap(3)
        );
        for i in 4..7 {
            assert!(
                (2100..=2160).contains(&gap(i)),
                "a session that ran 2 s is followed by the base delay: {}",
                gap(i)
            );
        }
    }
}
