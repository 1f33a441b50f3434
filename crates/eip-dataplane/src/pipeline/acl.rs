//! Per-EIP access lists on ingress (client -> EIP), after edge protection and
//! before rate limits and NAT: the compiled list (`crate::tables::acl`)
//! decides, and the worker counts the deciding rule in its own counters
//! ([`crate::counters::Counters::acl_hit`]); the control thread sums them. An
//! EIP without a list costs one flag test of its record.

use super::Pipeline;
use crate::counters::DropReason;
use crate::tables::acl::Acl;
use crate::tables::EipId;

impl Pipeline {
    /// Applies `acl`, the list of the EIP in `slot` (epoch `epoch`; callers
    /// test [`crate::tables::slab::EipSlab::acl`] first), to a packet from
    /// `src` (an IPv4 address as a number when `!v6`) with this protocol and
    /// destination port (`None`: no ports, e.g. a later fragment).
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    pub(super) fn filter(
        &mut self,
        acl: &Acl,
        slot: EipId,
        epoch: u32,
        v6: bool,
        src: u128,
        protocol: u8,
        dport: Option<u16>,
    ) -> Result<(), DropReason> {
        let v = acl.check(v6, src, protocol, dport);
        self.counters
            .acl_hit(slot, epoch, acl.id, acl.rules() + 1, v.rule);
        if v.deny {
            Err(DropReason::AclDenied)
        } else {
            Ok(())
        }
    }
}
