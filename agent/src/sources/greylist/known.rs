//! The triplet keys the cluster remembers, followed from a node's `WatchGreylist` stream: a
//! starting set, then each applied sighting batch. Only a complete set may answer "never seen":
//! the set is *live* from the message that ends the starting set until the stream breaks, and
//! while it is not, every request is asked of the cluster as before.

use mxrep_common::lock::MutexExt as _;
use mxrep_proto::v1 as pb;
use std::collections::HashSet;
use std::sync::Mutex;

/// The keys, and whether they are complete now.
#[derive(Default)]
pub struct KnownTriplets {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Every key the cluster remembers (plus the ones this agent deferred and reported).
    keys: HashSet<u64>,
    /// The stream is caught up and unbroken: `keys` is complete.
    live: bool,
}

impl KnownTriplets {
    /// Whether answers may come from this set now.
    pub fn is_live(&self) -> bool {
        self.inner.locked().live
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.inner.locked().keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `None` when the set is not live; otherwise whether `key` was never seen (and is now).
    pub fn insert_if_new(&self, key: u64) -> Option<bool> {
        let mut inner = self.inner.locked();
        inner.live.then(|| inner.keys.insert(key))
    }

    /// Follows one node's stream until it breaks; the set is live only while it lasts.
    pub async fn follow(&self, addr: &str, mx_host: &str) -> anyhow::Result<()> {
        let ch = mxrep_common::endpoint::connect(addr).await?;
        let mut stream = pb::agent_client::AgentClient::new(ch)
            .max_decoding_message_size(64 << 20)
            .watch_greylist(pb::WatchGreylistRequest {
                mx_host: mx_host.to_string(),
            })
            .await?
            .into_inner();
        let mut starting = HashSet::new();
        let mut caught_up = false;
        let result = loop {
            let msg = match stream.message().await {
                Ok(Some(m)) => m,
                Ok(None) => break Ok(()),
                Err(e) => break Err(anyhow::Error::from(e)),
            };
            if caught_up {
                self.inner.locked().keys.extend(msg.keys);
                continue;
            }
            starting.extend(msg.keys);
            if msg.caught_up {
                caught_up = true;
                let n = starting.len();
                let mut inner = self.inner.locked();
                inner.keys = std::mem::take(&mut starting);
                inner.live = true;
                drop(inner);
                tracing::info!(
                    "greylisting: {n} known triplets from {addr}; answering new ones here"
                );
            }
        };
        self.inner.locked().live = false;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_while_live() {
        let k = KnownTriplets::default();
        assert_eq!(k.insert_if_new(1), None, "not caught up: ask the cluster");
        k.inner.locked().live = true;
        assert_eq!(k.insert_if_new(1), Some(true));
        assert_eq!(k.insert_if_new(1), Some(false));
        k.inner.locked().live = false;
        assert_eq!(k.insert_if_new(2), None);
        assert_eq!(k.len(), 1);
    }
}
