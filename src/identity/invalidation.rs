//! Revocation across replicas: each replica caches resolved credentials for a while, so a
//! logout, key revocation, password change or user deletion on one replica is published on a
//! Redis channel and every other replica drops the same cache entries at once, instead of
//! honouring the credential until its entry expires. A replica that loses the channel empties
//! its caches when it is back, since it may have missed messages.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionManager;

use super::Identity;
use crate::config::RedisConfig;

/// How long a publish may take before it is given up (the local entry is gone already).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);
/// The wait before the listener tries Redis again.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// One cache entry (or family) to drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forget {
    /// A sign-in session, by id.
    Session(String),
    /// An API key, by hash.
    Key(String),
    /// Every cached better-auth token (they are cached by token, not by session).
    SessionTokens,
}

impl Forget {
    fn encode(&self, origin: &str) -> String {
        match self {
            Forget::Session(id) => format!("{origin} s {id}"),
            Forget::Key(hash) => format!("{origin} k {hash}"),
            Forget::SessionTokens => format!("{origin} t -"),
        }
    }

    /// The message and the replica that sent it.
    fn decode(message: &str) -> Option<(&str, Forget)> {
        let mut parts = message.splitn(3, ' ');
        let (origin, kind, value) = (parts.next()?, parts.next()?, parts.next()?);
        let forget = match kind {
            "s" => Forget::Session(value.to_string()),
            "k" => Forget::Key(value.to_string()),
            "t" => Forget::SessionTokens,
            _ => return None,
        };
        Some((origin, forget))
    }
}

/// The channel, and this replica's name on it (its own messages are not applied twice).
pub struct Broadcast {
    client: redis::Client,
    publisher: ConnectionManager,
    channel: String,
    origin: String,
}

impl Broadcast {
    pub fn new(config: &RedisConfig) -> anyhow::Result<Broadcast> {
        let client = redis::Client::open(config.url.expose())
            .map_err(|e| anyhow::anyhow!("redis.url: {e}"))?;
        let manager = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout.max(Duration::from_millis(250))))
            .set_response_timeout(Some(PUBLISH_TIMEOUT))
            .set_number_of_retries(1);
        let publisher = ConnectionManager::new_lazy_with_config(client.clone(), manager)?;
        Ok(Broadcast {
            client,
            publisher,
            channel: format!("{}:identity:forget", config.key_prefix),
            origin: crate::store::new_id(),
        })
    }

    /// Tells the other replicas, on its own task: the caller has dropped its own entry already.
    pub fn publish(&self, forget: &Forget) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut conn = self.publisher.clone();
        let (channel, message) = (self.channel.clone(), forget.encode(&self.origin));
        runtime.spawn(async move {
            let mut command = redis::cmd("PUBLISH");
            command.arg(&channel).arg(&message);
            let sent = command.query_async::<i64>(&mut conn);
            match tokio::time::timeout(PUBLISH_TIMEOUT, sent).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not tell other replicas of a revocation")
                }
                Err(_) => tracing::warn!("telling other replicas of a revocation timed out"),
            }
        });
    }

    /// Applies the other replicas' messages to `identity` until it is gone.
    pub fn listen(self: &Arc<Self>, identity: Weak<Identity>) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut first = true;
            loop {
                if identity.strong_count() == 0 {
                    return;
                }
                match this.client.get_async_pubsub().await {
                    Ok(mut pubsub) => match pubsub.subscribe(&this.channel).await {
                        Ok(()) => {
                            if !first {
                                // Messages sent while away are lost: forget everything cached.
                                if let Some(identity) = identity.upgrade() {
                                    identity.forget_all_cached();
                                }
                            }
                            let mut messages = pubsub.on_message();
                            while let Some(message) = messages.next().await {
                                let Some(identity) = identity.upgrade() else {
                                    return;
                                };
                                let Ok(text) = std::str::from_utf8(message.get_payload_bytes())
                                else {
                                    continue;
                                };
                                if let Some((origin, forget)) = Forget::decode(text) {
                                    if origin != this.origin {
                                        identity.apply(&forget);
                                    }
                                }
                            }
                            tracing::warn!("the revocation channel closed; reconnecting");
                        }
                        Err(e) => tracing::warn!(error = %e, "subscribing to revocations failed"),
                    },
                    Err(e) => tracing::warn!(error = %e, "no Redis for revocations; retrying"),
                }
                first = false;
                tokio::time::sleep(RECONNECT_DELAY).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for forget in [
            Forget::Session("sess-1".into()),
            Forget::Key("abc123".into()),
            Forget::SessionTokens,
        ] {
            let text = forget.encode("replica-a");
            assert_eq!(Forget::decode(&text), Some(("replica-a", forget)));
        }
        assert_eq!(Forget::decode("replica-a x y"), None);
        assert_eq!(Forget::decode("garbage"), None);
    }
}
