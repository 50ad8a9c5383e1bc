//! The global allocator: mimalloc, called the way `malloc` is.
//!
//! The `mimalloc` crate's `MiMalloc` hands every request to `mi_malloc_aligned`, whatever
//! its alignment. For blocks over 1 KB (a reply's buffer, hyper's read buffer) that entry
//! takes its generic path: a size-class lookup (`mi_good_size`) to decide whether the
//! block is naturally aligned and, for sizes that are not a power of two, an
//! over-allocation that marks the page as holding aligned blocks, which every later free
//! on it checks. About 0.2k instructions a request for nothing: Rust asks for at most 16
//! bytes of alignment for nearly everything, which plain `mi_malloc` always gives.
//! This allocator calls `mi_malloc` when that suffices and `mi_malloc_aligned` otherwise
//! (as std's `System` does with `malloc`). The bare-hyper limit (`bench/bare_hyper.rs`)
//! uses this one too, so that the comparison stays fair.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment every mimalloc block of at least this size has, and every smaller
/// block up to its size: its size classes are whole words, and from two words on whole
/// pairs of words on 64-bit targets (`mi_bin`'s `MI_ALIGN2W`; `_mi_page_malloc_zero`
/// asserts it), which is `malloc`'s promise (`max_align_t`).
const MIN_ALIGN: usize = 16;

/// mimalloc, with the plain entry points for the alignments they give.
pub struct Allocator;

/// Whether plain `mi_malloc(size)` is aligned enough for `align`.
fn plain(size: usize, align: usize) -> bool {
    align <= MIN_ALIGN && align <= size
}

// SAFETY: every block comes from mimalloc and goes back to it (`mi_free` takes blocks of
// either entry point); each entry point is used only for alignments it guarantees
// (`plain`), so every block is aligned as its layout asks.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's allocation entry points have no preconditions.
        unsafe {
            if plain(layout.size(), layout.align()) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe {
            if plain(layout.size(), layout.align()) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator (GlobalAlloc's contract).
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by this allocator with `layout` (GlobalAlloc's
        // contract); the new block keeps its alignment (`plain`).
        unsafe {
            if plain(new_size, layout.align()) {
                mi::mi_realloc(ptr.cast(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every size up to a few pages, at every alignment up to 4 KB, comes back aligned
    /// as asked, through each entry point.
    #[test]
    fn blocks_are_aligned_as_asked() {
        use std::alloc::{GlobalAlloc, Layout};
        let a = super::Allocator;
        for align in (0..13).map(|s| 1usize << s) {
            for size in (1..=9000)
                .step_by(7)
                .chain([1, 2, 3, 8, 15, 16, 17, 24, 1024, 4096])
            {
                let layout = Layout::from_size_align(size, align).expect("a layout");
                // SAFETY: a non-zero size; each block is freed once, by this allocator.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(
                        !p.is_null() && (p as usize).is_multiple_of(align),
                        "{size} {align}"
                    );
                    p.write_bytes(0xa5, size);
                    let z = a.alloc_zeroed(layout);
                    assert!(
                        !z.is_null() && (z as usize).is_multiple_of(align),
                        "{size} {align}"
                    );
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    let bigger = size * 2 + 1;
                    let r = a.realloc(p, layout, bigger);
                    assert!(
                        !r.is_null() && (r as usize).is_multiple_of(align),
                        "{size} {align}"
                    );
                    assert!(
                        std::slice::from_raw_parts(r, size)
                            .iter()
                            .all(|&b| b == 0xa5)
                    );
                    a.dealloc(r, Layout::from_size_align(bigger, align).expect("a layout"));
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
