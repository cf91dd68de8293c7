//! Bytes shared by reference counting with whatever holds them: a module's own
//! copy of its wasm, or a range of a loaded artifact (a mapped `.cwasm` file),
//! so that loading an artifact copies neither the module's wasm nor its tables.

use std::ops::Range;
use std::sync::Arc;

/// Immutable bytes: `range` of what `owner` holds. Cheap to clone; derefs to
/// the bytes. Reading them takes no lock and allocates nothing (the signal
/// handler reads trap tables held this way).
#[derive(Clone)]
pub(crate) struct SharedBytes {
    owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    range: Range<usize>,
}

impl SharedBytes {
    /// `range` of `owner`'s bytes.
    ///
    /// # Panics
    /// If `range` is not inside them.
    #[cfg(any(carnac_native_code, test))]
    pub(crate) fn new(owner: Arc<dyn AsRef<[u8]> + Send + Sync>, range: Range<usize>) -> SharedBytes {
        assert!(
            range.start <= range.end && range.end <= (*owner).as_ref().len(),
            "{range:?} outside {} bytes",
            (*owner).as_ref().len()
        );
        SharedBytes { owner, range }
    }

    /// `range` of these bytes (relative to them), sharing the owner.
    ///
    /// # Panics
    /// If `range` is not inside them.
    #[cfg(any(carnac_native_code, test))]
    pub(crate) fn slice(&self, range: Range<usize>) -> SharedBytes {
        assert!(range.start <= range.end && range.end <= self.range.len(), "{range:?} outside {} bytes", self.len());
        SharedBytes { owner: self.owner.clone(), range: self.range.start + range.start..self.range.start + range.end }
    }
}

impl From<Vec<u8>> for SharedBytes {
    fn from(v: Vec<u8>) -> SharedBytes {
        let len = v.len();
        SharedBytes { owner: Arc::new(v), range: 0..len }
    }
}

impl From<&[u8]> for SharedBytes {
    fn from(b: &[u8]) -> SharedBytes {
        b.to_vec().into()
    }
}

impl Default for SharedBytes {
    fn default() -> SharedBytes {
        Vec::new().into()
    }
}

impl std::ops::Deref for SharedBytes {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        // Never out of bounds (checked when made); `get` keeps this panic-free
        // all the same, for the signal handler's sake.
        (*self.owner).as_ref().get(self.range.clone()).unwrap_or(&[])
    }
}

impl std::fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedBytes({} bytes)", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_share_their_owner() {
        let b = SharedBytes::from(vec![1u8, 2, 3, 4, 5]);
        let s = b.slice(1..4);
        assert_eq!(&*s, &[2, 3, 4]);
        assert_eq!(&*s.slice(1..3), &[3, 4]);
        assert_eq!(&*SharedBytes::new(Arc::new(vec![7u8, 8]), 1..2), &[8]);
        assert!(SharedBytes::default().is_empty());
        assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.slice(2..6))).is_err());
    }
}
