//! Prompt caching: the first request with a given prefix (up to its last `cachePoint`) writes
//! it to the cache, later ones read it, as Bedrock reports in `cacheWriteInputTokens` and
//! `cacheReadInputTokens`.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::request::CachePrefix;

/// Prefixes seen by this simulator.
#[derive(Debug, Default)]
pub(crate) struct PromptCache {
    seen: Mutex<HashSet<String>>,
}

/// Cache activity of one request, in tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CacheUse {
    /// Read from the cache.
    pub read: u64,
    /// Written to the cache.
    pub write: u64,
}

impl PromptCache {
    /// Looks `prefix` up and remembers it; `None` without a cache point.
    pub fn lookup(&self, prefix: Option<&CachePrefix>) -> Option<CacheUse> {
        let prefix = prefix?;
        // A poisoned lock only means another request panicked; the set is still usable.
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        Some(if seen.insert(prefix.key.clone()) {
            CacheUse { read: 0, write: prefix.tokens }
        } else {
            CacheUse { read: prefix.tokens, write: 0 }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_writes_then_reads() {
        let cache = PromptCache::default();
        let p = CachePrefix { key: "k".into(), tokens: 7 };
        assert_eq!(cache.lookup(None), None);
        assert_eq!(cache.lookup(Some(&p)), Some(CacheUse { read: 0, write: 7 }));
        assert_eq!(cache.lookup(Some(&p)), Some(CacheUse { read: 7, write: 0 }));
    }
}
