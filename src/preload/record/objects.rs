//! Which loaded object holds an address, asked of the loader in a way that
//! cannot race with `dlclose`.
//!
//! `dladdr` returns a pointer to the loader's copy of the object's name; once
//! it has returned, another thread may `dlclose` the object and free that
//! name, so reading it afterwards is a use after free (Python extensions are
//! unloaded in real processes). `dl_iterate_phdr` calls back *under* the
//! loader's lock, so the names are copied there, while the objects are known
//! to be loaded. The callback allocates nothing: with the loader's lock held,
//! a `malloc` that itself calls into the loader (some allocators do) could
//! deadlock against a concurrent `dlopen`. The copies go into buffers sized
//! before the walk.

use std::ffi::{CStr, c_int, c_void};

/// Room for the names copied in one walk; a name that does not fit is
/// reported as unknown (loaded paths are short; 256 call sites at most).
const NAME_ARENA: usize = 64 * 1024;

const UNKNOWN: &str = "(unknown)";

/// Filled by the callback, for one walk.
struct Walk<'a> {
    addresses: &'a [usize],
    /// Per address: the span of its name in `arena`, `None` until found.
    found: Vec<Option<(usize, usize)>>,
    /// Per address: whether the object is the main program (its name is empty).
    main_program: Vec<bool>,
    arena: Vec<u8>,
}

/// The file name of the object holding each address ("(unknown)" for 0 or an
/// address no loaded object holds), canonicalised.
pub fn names_of(addresses: &[usize]) -> Vec<String> {
    let mut walk = Walk {
        addresses,
        found: vec![None; addresses.len()],
        main_program: vec![false; addresses.len()],
        arena: Vec::with_capacity(NAME_ARENA),
    };
    if !addresses.is_empty() {
        // SAFETY: the callback matches dl_iterate_phdr's contract and `walk`
        // outlives the call; the callback only touches `walk` and the loader's
        // data it is handed, during the call.
        unsafe {
            libc::dl_iterate_phdr(Some(visit), (&raw mut walk).cast());
        }
    }
    (0..addresses.len())
        .map(|i| match walk.found[i] {
            _ if walk.main_program[i] => main_program_name(),
            Some((start, end)) => canonical(String::from_utf8_lossy(&walk.arena[start..end]).into_owned()),
            None => UNKNOWN.to_owned(),
        })
        .collect()
}

/// Called by the loader, under its lock, once per loaded object.
unsafe extern "C" fn visit(info: *mut libc::dl_phdr_info, _size: usize, data: *mut c_void) -> c_int {
    // SAFETY: `data` is the `Walk` passed by `names_of`; `info` is valid for
    // the duration of this call (dl_iterate_phdr's contract).
    let (walk, info) = unsafe { (&mut *data.cast::<Walk>(), &*info) };
    if info.dlpi_phdr.is_null() {
        return 0;
    }
    // SAFETY: dlpi_phdr points at dlpi_phnum program headers of this object.
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
    let holds = |address: usize| {
        headers.iter().filter(|h| h.p_type == libc::PT_LOAD).any(|h| {
            let start = (info.dlpi_addr as usize).wrapping_add(h.p_vaddr as usize);
            address.wrapping_sub(start) < h.p_memsz as usize
        })
    };
    let mut span = None;
    for i in 0..walk.addresses.len() {
        let address = walk.addresses[i];
        if address == 0 || walk.found[i].is_some() || walk.main_program[i] || !holds(address) {
            continue;
        }
        // SAFETY: dlpi_name is NULL or a NUL-terminated string owned by the
        // loader, valid while its lock is held (for this call).
        let name =
            if info.dlpi_name.is_null() { &[][..] } else { unsafe { CStr::from_ptr(info.dlpi_name) }.to_bytes() };
        if name.is_empty() {
            walk.main_program[i] = true;
            continue;
        }
        if span.is_none() && walk.arena.len() + name.len() <= walk.arena.capacity() {
            let start = walk.arena.len();
            walk.arena.extend_from_slice(name);
            span = Some((start, walk.arena.len()));
        }
        walk.found[i] = span;
    }
    0
}

/// The main program is listed without a name; the kernel knows its path.
fn main_program_name() -> String {
    std::fs::read_link("/proc/self/exe").map_or_else(|_| UNKNOWN.to_owned(), |p| p.to_string_lossy().into_owned())
}

/// Objects are named as they were loaded (maybe relative): resolved here.
fn canonical(name: String) -> String {
    std::fs::canonicalize(&name).map_or(name, |p| p.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_object_of_each_address() {
        let in_libc = libc::strlen as *const () as usize;
        let in_this_program = names_of as *const () as usize;
        let names = names_of(&[in_libc, 0, in_this_program, 1]);
        assert!(names[0].contains("libc"), "{names:?}");
        assert_eq!(names[1], UNKNOWN);
        assert_eq!(names[2], main_program_name());
        assert!(names[2].starts_with('/'), "{names:?}");
        assert_eq!(names[3], UNKNOWN);
    }
}
