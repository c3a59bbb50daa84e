//! Which loaded file holds an address, without reading the loader's memory.
//!
//! `dladdr` returns a pointer to the loader's copy of the object's name; once
//! it has returned, another thread may `dlclose` the object and free that
//! name, so reading it afterwards is a use after free (Python extensions are
//! unloaded in real processes). Walking the loader's list under its lock
//! (`dl_iterate_phdr`) avoids the free, but the loader's lock is invisible to
//! ThreadSanitizer and a `malloc` inside the walk could deadlock against a
//! concurrent `dlopen`. The kernel's `/proc/self/maps` names every mapped file
//! by its canonical path: reading it touches no memory of the loader, takes
//! none of its locks, and cannot race with `dlclose` (an object unloaded
//! meanwhile is simply not listed).

/// What an address no mapped file holds is called.
pub const UNKNOWN: &str = "(unknown)";

/// One executable range of a mapped file.
#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    path: String,
}

/// The file holding each address (`UNKNOWN` for 0, anonymous memory, or an
/// address nothing holds now), by its canonical path.
pub fn names_of(addresses: &[usize]) -> Vec<String> {
    if addresses.is_empty() {
        return Vec::new();
    }
    let maps = std::fs::read("/proc/self/maps").unwrap_or_default();
    let mappings = executable_mappings(&String::from_utf8_lossy(&maps));
    addresses.iter().map(|&address| file_at(&mappings, address).unwrap_or(UNKNOWN).to_owned()).collect()
}

/// The executable, file-backed ranges of a maps listing, sorted by start
/// (the kernel lists them in address order).
fn executable_mappings(listing: &str) -> Vec<Mapping> {
    listing.lines().filter_map(parse_line).collect()
}

/// `start-end perms offset dev inode   path` (the path may hold spaces).
fn parse_line(line: &str) -> Option<Mapping> {
    let mut fields = line.splitn(6, ' ');
    let (range, perms) = (fields.next()?, fields.next()?);
    let path = fields.nth(3)?.trim_start();
    if perms.as_bytes().get(2) != Some(&b'x') || !path.starts_with('/') {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    Some(Mapping {
        start: usize::from_str_radix(start, 16).ok()?,
        end: usize::from_str_radix(end, 16).ok()?,
        path: path.to_owned(),
    })
}

fn file_at(mappings: &[Mapping], address: usize) -> Option<&str> {
    let after = mappings.partition_point(|m| m.start <= address);
    let mapping = mappings[..after].last()?;
    (address < mapping.end).then_some(mapping.path.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_file_of_each_address() {
        let in_libc = libc::strlen as *const () as usize;
        let in_this_program = names_of as *const () as usize;
        let names = names_of(&[in_libc, 0, in_this_program, 1]);
        assert!(names[0].contains("libc"), "{names:?}");
        assert_eq!(names[1], UNKNOWN);
        let program = std::fs::read_link("/proc/self/exe").unwrap();
        assert_eq!(names[2], program.to_string_lossy());
        assert_eq!(names[3], UNKNOWN);
    }

    #[test]
    fn reads_only_executable_file_mappings() {
        let listing = "\
55d0a0000000-55d0a0001000 r--p 00000000 08:01 42      /opt/my app/bin/python3
55d0a0001000-55d0a0003000 r-xp 00001000 08:01 42      /opt/my app/bin/python3
7f0000000000-7f0000021000 rw-p 00000000 00:00 0
7f1000000000-7f1000100000 r-xp 00000000 08:01 7       /usr/lib/libascendcl.so (deleted)
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0       [vdso]
garbage";
        let mappings = executable_mappings(listing);
        assert_eq!(mappings.len(), 2, "{mappings:?}");
        assert_eq!(file_at(&mappings, 0x55d0a0001000), Some("/opt/my app/bin/python3"));
        assert_eq!(file_at(&mappings, 0x55d0a0002fff), Some("/opt/my app/bin/python3"));
        assert_eq!(file_at(&mappings, 0x55d0a0003000), None);
        assert_eq!(file_at(&mappings, 0x55d0a0000fff), None, "not executable");
        assert_eq!(file_at(&mappings, 0x7f1000000010), Some("/usr/lib/libascendcl.so (deleted)"));
        assert_eq!(file_at(&mappings, 0x7ffd00000010), None, "not a file");
        assert_eq!(file_at(&mappings, 0), None);
    }
}
