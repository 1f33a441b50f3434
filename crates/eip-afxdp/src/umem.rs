//! The UMEM memory area and the arithmetic between frame indices and addresses.
//!
//! We run the UMEM in *aligned* chunk mode: frames are `frame_size` bytes (a power
//! of two) and the kernel accepts any address inside a frame on the fill ring
//! (rounding it down) and any `[addr, addr + len)` inside one frame on the TX ring.
//! That is what lets a TX descriptor start in the headroom after VXLAN encapsulation
//! moved the packet's head forward: the descriptor address is simply
//! `frame_base + frame.head()`.
//!
//! Where RX data lands: the kernel writes a received packet at
//! `frame_base + umem_headroom + XDP_PACKET_HEADROOM (256)`, in copy and zero-copy
//! mode alike, so even with `umem_headroom == 0` there are 256 bytes in front of
//! every received packet, more than the 64 a VXLAN encapsulation needs. We read
//! the real offset from every RX descriptor instead of assuming it.

use std::ptr::NonNull;

use super::error::SetupError;
use super::frames::FrameIdx;

/// Bytes the kernel always reserves in front of XDP packet data (`XDP_PACKET_HEADROOM`).
pub const XDP_PACKET_HEADROOM: u32 = 256;

/// Frame geometry of one UMEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UmemLayout {
    frame_shift: u32,
    frames: u32,
}

impl UmemLayout {
    /// `frames` frames of `frame_size` bytes; `frame_size` must be 2048 or 4096
    /// (aligned mode needs a power of two, and the kernel caps chunks at a page).
    pub fn new(frame_size: u32, frames: u32) -> Result<Self, SetupError> {
        if frame_size != 2048 && frame_size != 4096 {
            return Err(SetupError::Config(format!(
                "frame_size must be 2048 or 4096 (aligned UMEM chunks), not {frame_size}"
            )));
        }
        if frames == 0 {
            return Err(SetupError::Config("a UMEM needs at least one frame".into()));
        }
        Ok(UmemLayout {
            frame_shift: frame_size.trailing_zeros(),
            frames,
        })
    }

    /// Bytes per frame.
    #[inline]
    pub fn frame_size(&self) -> u32 {
        1 << self.frame_shift
    }

    /// Number of frames.
    #[inline]
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Total bytes.
    #[inline]
    pub fn bytes(&self) -> usize {
        (self.frames as usize) << self.frame_shift
    }

    /// UMEM address of the first byte of `frame`.
    #[inline]
    pub fn addr_of(&self, frame: FrameIdx) -> u64 {
        u64::from(frame) << self.frame_shift
    }

    /// The frame an address (from an RX or completion descriptor) points into, and
    /// the offset inside it. `None` if the address is beyond the UMEM.
    #[inline]
    pub fn locate(&self, addr: u64) -> Option<(FrameIdx, u32)> {
        let frame = addr >> self.frame_shift;
        if frame >= u64::from(self.frames) {
            return None;
        }
        let offset = (addr & (u64::from(self.frame_size()) - 1)) as u32;
        Some((frame as FrameIdx, offset))
    }
}

/// An anonymous, page-aligned mapping that backs one UMEM.
///
/// Owned by the worker that owns the rings, so it outlives every pointer the worker
/// builds into it. The kernel pins the pages at registration, so unmapping it after
/// the sockets are gone is fine; unmapping it before would only hurt us, and the
/// ownership makes that impossible.
pub struct UmemArea {
    ptr: NonNull<u8>,
    layout: UmemLayout,
}

// SAFETY: the area is plain memory owned by this value; the only accesses go through
// `frame_mut`, whose contract (exclusive ownership of the frame, established by the
// ledger of the single worker that owns this value) does not depend on the thread.
unsafe impl Send for UmemArea {}

impl UmemArea {
    /// Maps and pre-faults `layout.bytes()` of zeroed memory.
    pub fn new(layout: UmemLayout) -> Result<Self, SetupError> {
        let len = layout.bytes();
        // SAFETY: anonymous private mapping with no address hint: it cannot alias any
        // existing Rust object. The result is checked against MAP_FAILED below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(SetupError::UmemAlloc {
                bytes: len,
                source: std::io::Error::last_os_error(),
            });
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).expect("mmap returned NULL without MAP_FIXED");
        Ok(UmemArea { ptr, layout })
    }

    /// Geometry of the area.
    #[inline]
    pub fn layout(&self) -> UmemLayout {
        self.layout
    }

    /// The whole area as the raw slice pointer `xdpilone::Umem::new` wants.
    pub fn as_raw_slice(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.ptr, self.layout.bytes())
    }

    /// Address of the first byte of `frame` (for identity checks; not for access).
    #[inline]
    pub fn frame_ptr(&self, frame: FrameIdx) -> *const u8 {
        self.ptr
            .as_ptr()
            .wrapping_add(frame as usize * self.layout.frame_size() as usize)
    }

    /// The bytes of one frame.
    ///
    /// # Safety
    /// The caller must own `frame` exclusively for the returned lifetime: the ledger
    /// says it is `Held` by this worker (so the kernel is not writing it, the RX
    /// descriptor having been read after the ring's acquire load), and no other live
    /// slice from this function covers the same frame.
    ///
    /// # Panics
    /// In debug builds, if `frame` is outside the area.
    #[inline]
    #[allow(clippy::mut_from_ref)] // Exclusivity is the caller's contract, as documented.
    pub unsafe fn frame_mut(&self, frame: FrameIdx) -> &mut [u8] {
        debug_assert!(frame < self.layout.frames);
        let size = self.layout.frame_size() as usize;
        // SAFETY: `frame < frames`, so `[frame * size, (frame + 1) * size)` lies inside
        // the mapping of `frames * size` bytes; exclusivity is the caller's contract.
        unsafe {
            std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(frame as usize * size), size)
        }
    }
}

impl Drop for UmemArea {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping created in `new`, unmapped once.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.layout.bytes());
        }
    }
}

impl std::fmt::Debug for UmemArea {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UmemArea")
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_round_trips_addresses() {
        let l = UmemLayout::new(2048, 16).unwrap();
        assert_eq!(l.addr_of(3), 6144);
        assert_eq!(l.locate(6144 + 256), Some((3, 256)));
        assert_eq!(l.locate(l.addr_of(15) + 2047), Some((15, 2047)));
        assert_eq!(l.locate(16 * 2048), None);
        assert_eq!(l.bytes(), 32 * 1024);
    }

    #[test]
    fn layout_rejects_odd_frame_sizes() {
        assert!(UmemLayout::new(3000, 16).is_err());
        assert!(UmemLayout::new(8192, 16).is_err());
        assert!(UmemLayout::new(4096, 0).is_err());
    }

    #[test]
    fn area_frames_are_disjoint_and_writable() {
        let area = UmemArea::new(UmemLayout::new(2048, 4).unwrap()).unwrap();
        // SAFETY: test owns every frame; slices for different frames do not overlap.
        let (a, b) = unsafe { (area.frame_mut(0), area.frame_mut(3)) };
        a.fill(1);
        b.fill(2);
        assert_eq!(a.len(), 2048);
        assert!(a.iter().all(|&x| x == 1) && b.iter().all(|&x| x == 2));
    }
}
