//! What the fuzz targets share: a global allocator that tracks the peak number of live bytes, so
//! that each target can assert that its input cannot make the code under test allocate more than
//! a small multiple of the input's size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes live right now.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Most bytes live at once since the last [`measure`] began.
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes and their peak. Declare it in each target with
/// `#[global_allocator] static ALLOC: mclr_fuzz::Tracking = mclr_fuzz::Tracking;`.
pub struct Tracking;

fn grew(by: usize) {
    let live = LIVE.fetch_add(by, Ordering::Relaxed).saturating_add(by);
    PEAK.fetch_max(live, Ordering::Relaxed);
}

fn shrank(by: usize) {
    LIVE.fetch_sub(by, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to `System`; only counters are updated around it.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }
}

/// Runs `f` and returns its result with the peak number of bytes it had live at once beyond what
/// was live when it started.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    (out, peak)
}

/// The allowance every target asserts: twice the input plus [`SLACK`] bytes.
pub fn allowance(input_len: usize) -> usize {
    input_len.saturating_mul(2).saturating_add(SLACK)
}

/// Fixed allowance on top of twice the input: error messages, the capped lists of class names,
/// metrics and layers, the share link's warnings (at most 8 KiB of query is read).
pub const SLACK: usize = 2 << 20;
