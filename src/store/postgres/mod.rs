//! The PostgreSQL backend of [`Storage`](super::Storage): one server shared by every node of
//! a cluster.
use super::{Reader, Result, StoreError};

pub struct PgStore;

impl PgStore {
    pub fn open(url: &str) -> Result<PgStore> {
        Err(StoreError::Open {
            path: super::location::redact(url).into(),
            reason: "this build has no PostgreSQL store yet".into(),
        })
    }

    pub fn open_read_only(url: &str) -> Result<Box<dyn Reader>> {
        Err(StoreError::Open {
            path: super::location::redact(url).into(),
            reason: "this build has no PostgreSQL store yet".into(),
        })
    }
}
