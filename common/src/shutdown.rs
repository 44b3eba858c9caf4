//! Shutdown: the process signal as a future, and a cloneable handle that every long-lived task
//! (servers, streams to agents, background loops) awaits, so one trigger stops them all.

use tokio::sync::watch;

/// Resolves on SIGTERM or SIGINT.
pub async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Fires the shutdown (once; later calls do nothing).
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

/// Awaits the shutdown; clone it into every task that must stop.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new trigger and the handle it fires.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// A handle that never fires (for tests and tools that run until dropped).
    pub fn never() -> Self {
        let (tx, rx) = watch::channel(false);
        std::mem::forget(tx);
        Shutdown(rx)
    }

    /// Has the shutdown been fired?
    pub fn is_fired(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the shutdown is fired (or its trigger is dropped).
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|s| *s).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn every_clone_wakes_once_fired() {
        let (trigger, shutdown) = channel();
        let waiters: Vec<_> = (0..3)
            .map(|_| tokio::spawn(shutdown.clone().wait()))
            .collect();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(waiters.iter().all(|w| !w.is_finished()));
        assert!(!shutdown.is_fired());
        trigger.fire();
        for w in waiters {
            tokio::time::timeout(Duration::from_secs(1), w)
                .await
                .unwrap()
                .unwrap();
        }
        assert!(shutdown.is_fired());
        // A handle taken after the fire resolves at once.
        tokio::time::timeout(Duration::from_millis(1), shutdown.wait())
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn never_does_not_fire() {
        let r = tokio::time::timeout(Duration::from_secs(3600), Shutdown::never().wait()).await;
        assert!(r.is_err());
    }
}
