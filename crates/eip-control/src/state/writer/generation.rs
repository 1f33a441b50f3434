//! Observed state in force: a new tables generation for path or backend
//! health or a next hop, never a new operator version, never on disk.

use super::{unpoison, ControlPlane, Snapshot, Writer};
use crate::api::{ApiError, ErrorCode};
use crate::state::SinkError;
use eip_dataplane::tables::Tables;
use std::sync::Arc;

impl ControlPlane {
    /// Puts an observed-state generation (path or backend health, a next hop)
    /// in force: no version, no journal. Rejected by the sink: nothing
    /// changes. Slow workers: the snapshot stands and the reply says `timeout`.
    pub(super) fn publish_generation(
        &self,
        writer: &mut Writer,
        tables: Tables,
        generation: u64,
        snapshot: impl FnOnce(Arc<Tables>) -> Snapshot,
    ) -> Result<Option<u64>, ApiError> {
        let tables = Arc::new(tables);
        let published = writer.sink.publish(Arc::clone(&tables), writer.ack_timeout);
        if let Err(SinkError::Rejected(reason)) = &published {
            return Err(ApiError::new(
                ErrorCode::Internal,
                format!("tables not published: {reason}"),
            ));
        }
        *unpoison(self.current.write()) = Arc::new(snapshot(tables));
        match published {
            Err(e) => Err(ApiError::new(ErrorCode::Timeout, e.to_string())),
            Ok(()) => Ok(Some(generation)),
        }
    }
}
