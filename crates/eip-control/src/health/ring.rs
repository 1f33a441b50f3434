//! A fixed-capacity ring, allocated once: the windows of probe outcomes and
//! RTT samples must not grow with the path's age.

/// A fixed-capacity ring that keeps the last `capacity` values pushed.
#[derive(Debug, Clone)]
pub(super) struct Ring<T> {
    slots: Vec<T>,
    capacity: usize,
    /// Next slot to write once full.
    next: usize,
}

impl<T: Copy> Ring<T> {
    pub(super) fn new(capacity: usize) -> Self {
        Ring {
            slots: Vec::with_capacity(capacity),
            capacity,
            next: 0,
        }
    }

    /// Appends `value`; returns the value it pushed out, if the ring was full.
    pub(super) fn push(&mut self, value: T) -> Option<T> {
        if self.slots.len() < self.capacity {
            self.slots.push(value);
            return None;
        }
        let old = std::mem::replace(&mut self.slots[self.next], value);
        self.next = (self.next + 1) % self.capacity;
        Some(old)
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The values, in no particular order.
    pub(super) fn values(&self) -> &[T] {
        &self.slots
    }
}
