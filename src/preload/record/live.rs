//! Live allocations: pointer -> (size, call site, device slot, pool), needed because a
//! free carries no size. Each shard is a linear-probing table behind its own
//! lock (`shard_lock`, held for a few instructions, never across a call),
//! grown with `mmap` so the host's allocator is never entered.
//!
//! Shards are grouped by where the memory lives: one group per device (modulo
//! `DEVICE_GROUPS`) and one for pinned host memory, and the pointer's hash
//! picks a shard within its group. Threads that allocate on devices of their
//! own (one rank per device, the usual layout) then never touch one another's
//! shards: a table shared by pointer hash alone made every other operation a
//! cache line taken from the other core. A device's addresses are its own, so
//! an address the runtime hands out again (its free went past us) is found in
//! the same group; a free looks in the freeing thread's group first and then
//! in the others.

use super::shard_lock::ShardLock;
use std::cell::UnsafeCell;

/// Groups for device memory; device slot `d` lives in group `d % DEVICE_GROUPS`.
const DEVICE_GROUPS: usize = 8;
/// The group of pinned host memory, after the device groups.
const HOST_GROUP: usize = DEVICE_GROUPS;
const GROUPS: usize = DEVICE_GROUPS + 1;
/// Shards per group, for threads that share a device.
const GROUP_SHARDS: usize = 8;
const SHARDS: usize = GROUPS * GROUP_SHARDS;
const FIRST_CAPACITY: usize = 256;

/// What is stored per pointer, packed in 8 bytes (16 with the key: with the
/// table at most 3/4 full and doubling, under 43 bytes per live allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// At most `MAX_SIZE` (see `Meta::new`).
    pub size: u64,
    /// The call site that allocated it (`callsites`), for bytes held per library.
    pub site: u8,
    pub device_slot: u8,
    pub pool: u8,
}

impl Meta {
    const SIZE_BITS: u32 = 40;
    /// 1 TiB: more than any device holds; a larger request cannot succeed.
    pub const MAX_SIZE: u64 = (1 << Self::SIZE_BITS) - 1;

    /// Sizes are clamped here, so that what is added at allocation is what
    /// is subtracted at the free.
    pub fn new(size: u64, site: usize, device_slot: usize, pool: usize) -> Meta {
        Meta { size: size.min(Self::MAX_SIZE), site: site as u8, device_slot: device_slot as u8, pool: pool as u8 }
    }

    fn pack(self) -> u64 {
        self.size | (u64::from(self.site) << 40) | (u64::from(self.device_slot) << 48) | (u64::from(self.pool) << 56)
    }

    fn unpack(word: u64) -> Meta {
        Meta {
            size: word & Self::MAX_SIZE,
            site: (word >> 40) as u8,
            device_slot: (word >> 48) as u8,
            pool: (word >> 56) as u8,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Slot {
    key: u64,
    meta: u64,
}

struct Table {
    slots: *mut Slot,
    capacity: usize,
    len: usize,
}

#[repr(align(128))]
struct Shard {
    lock: ShardLock,
    table: UnsafeCell<Table>,
}

// SAFETY: `table` is only touched while `lock` is held (or in a fork child,
// where no other thread exists).
unsafe impl Sync for Shard {}

static SHARD_TABLES: [Shard; SHARDS] = [const {
    Shard { lock: ShardLock::new(), table: UnsafeCell::new(Table { slots: std::ptr::null_mut(), capacity: 0, len: 0 }) }
}; SHARDS];

fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

struct Locked<'a>(&'a Shard);

impl Locked<'_> {
    fn acquire(shard: &Shard) -> Locked<'_> {
        shard.lock.lock();
        Locked(shard)
    }

    fn table(&mut self) -> &mut Table {
        // SAFETY: the lock is held for the lifetime of `self`.
        unsafe { &mut *self.0.table.get() }
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.0.lock.unlock();
    }
}

/// Where a pointer is looked for first: its memory's group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Home {
    Device(usize),
    Host,
}

impl Home {
    pub fn of(meta: Meta) -> Home {
        if usize::from(meta.pool) == super::HOST { Home::Host } else { Home::Device(usize::from(meta.device_slot)) }
    }

    fn group(self) -> usize {
        match self {
            Home::Device(slot) => slot % DEVICE_GROUPS,
            Home::Host => HOST_GROUP,
        }
    }
}

fn shard_of(group: usize, hash: u64) -> &'static Shard {
    &SHARD_TABLES[group * GROUP_SHARDS + (hash >> 61) as usize % GROUP_SHARDS]
}

impl Table {
    fn slot(&self, index: usize) -> Slot {
        // SAFETY: index < capacity (masked by callers); slots is a live mapping.
        unsafe { *self.slots.add(index) }
    }

    fn slot_mut(&mut self, index: usize) -> &mut Slot {
        // SAFETY: as in `slot`, and `&mut self` makes the access exclusive.
        unsafe { &mut *self.slots.add(index) }
    }

    fn find(&self, key: u64, hash: u64) -> Result<usize, usize> {
        let mask = self.capacity - 1;
        let mut index = hash as usize & mask;
        loop {
            let slot = self.slot(index);
            if slot.key == key {
                return Ok(index);
            }
            if slot.key == 0 {
                return Err(index);
            }
            index = (index + 1) & mask;
        }
    }

    /// Doubles the table (or makes the first one). False when mmap fails.
    fn grow(&mut self) -> bool {
        let capacity = if self.capacity == 0 { FIRST_CAPACITY } else { self.capacity * 2 };
        let Some(slots) = map_slots(capacity) else { return false };
        let old = Table { slots: self.slots, capacity: self.capacity, len: self.len };
        *self = Table { slots, capacity, len: 0 };
        for i in 0..old.capacity {
            let slot = old.slot(i);
            if slot.key != 0 {
                let at = self.find(slot.key, mix(slot.key)).unwrap_or_else(|free| free);
                *self.slot_mut(at) = slot;
                self.len += 1;
            }
        }
        unmap_slots(old.slots, old.capacity);
        true
    }

    /// Removes slot `hole` and shifts later members of its cluster back.
    fn remove_at(&mut self, mut hole: usize) {
        let mask = self.capacity - 1;
        let mut next = hole;
        loop {
            next = (next + 1) & mask;
            let slot = self.slot(next);
            if slot.key == 0 {
                break;
            }
            let home = mix(slot.key) as usize & mask;
            // Move `slot` into the hole unless its home lies cyclically in (hole, next].
            let stays = if hole <= next { hole < home && home <= next } else { hole < home || home <= next };
            if !stays {
                *self.slot_mut(hole) = slot;
                hole = next;
            }
        }
        self.slot_mut(hole).key = 0;
        self.len -= 1;
    }
}

fn map_slots(capacity: usize) -> Option<*mut Slot> {
    let bytes = capacity.checked_mul(std::mem::size_of::<Slot>())?;
    // SAFETY: anonymous private mapping; zero-filled, so every key is 0 (empty).
    let pointer = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    (pointer != libc::MAP_FAILED).then_some(pointer.cast())
}

fn unmap_slots(slots: *mut Slot, capacity: usize) {
    if !slots.is_null() {
        // SAFETY: `slots` came from map_slots with this capacity and is no longer used.
        unsafe { libc::munmap(slots.cast(), capacity * std::mem::size_of::<Slot>()) };
    }
}

pub enum Inserted {
    New,
    /// The key was present (its free was missed): the old value is returned.
    Replaced(Meta),
    /// No memory for the table: the allocation is not tracked.
    Full,
}

pub fn insert(key: u64, meta: Meta) -> Inserted {
    let hash = mix(key);
    let mut shard = Locked::acquire(shard_of(Home::of(meta).group(), hash));
    let table = shard.table();
    if (table.len + 1) * 4 > table.capacity * 3 && !table.grow() {
        return Inserted::Full;
    }
    match table.find(key, hash) {
        Ok(at) => {
            let old = Meta::unpack(table.slot(at).meta);
            table.slot_mut(at).meta = meta.pack();
            Inserted::Replaced(old)
        }
        Err(at) => {
            *table.slot_mut(at) = Slot { key, meta: meta.pack() };
            table.len += 1;
            Inserted::New
        }
    }
}

/// Forgets `key`, looking in `first`'s group before the others.
pub fn remove(key: u64, first: Home) -> Option<Meta> {
    let hash = mix(key);
    let first = first.group();
    let others = (0..GROUPS).filter(|&group| group != first);
    std::iter::once(first).chain(others).find_map(|group| remove_from(shard_of(group, hash), key, hash))
}

fn remove_from(shard: &Shard, key: u64, hash: u64) -> Option<Meta> {
    let mut shard = Locked::acquire(shard);
    let table = shard.table();
    if table.capacity == 0 {
        return None;
    }
    let at = table.find(key, hash).ok()?;
    let meta = Meta::unpack(table.slot(at).meta);
    table.remove_at(at);
    Some(meta)
}

/// Number of live entries.
#[cfg(test)]
fn len() -> usize {
    SHARD_TABLES.iter().map(|s| Locked::acquire(s).table().len).sum()
}

/// Empties every shard without taking locks: only for a fork child, where
/// a lock may be held by a thread that no longer exists.
pub fn reset_in_child() {
    for shard in &SHARD_TABLES {
        // SAFETY: single-threaded fork child; nothing else touches the table.
        let table = unsafe { &mut *shard.table.get() };
        unmap_slots(table.slots, table.capacity);
        *table = Table { slots: std::ptr::null_mut(), capacity: 0, len: 0 };
        shard.lock.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn matches_a_hash_map_under_random_inserts_and_removes() {
        let mut model = HashMap::new();
        let mut state = 0x1234_5678_u64;
        for step in 0..200_000u64 {
            state = mix(state.wrapping_add(step));
            // Few distinct keys so removes hit; key 0 is never used.
            let key = (state % 5_000 + 1) << 9;
            if state & 3 == 0 {
                // Half the removes guess the wrong group first.
                let hint = if state & 4 == 0 { Home::Host } else { Home::Device((state >> 8) as u8 as usize) };
                assert_eq!(remove(key, hint), model.remove(&key), "remove {key}");
            } else {
                // A key's memory lives in one place (a device's addresses
                // are its own), so its device and pool follow from the key.
                let meta = Meta::new(
                    state >> 20,
                    (state >> 4) as u8 as usize,
                    (key >> 9) as u8 as usize,
                    (key >> 10) as usize & 1,
                );
                let previous = model.insert(key, meta);
                match insert(key, meta) {
                    Inserted::New => assert_eq!(previous, None),
                    Inserted::Replaced(old) => assert_eq!(Some(old), previous),
                    Inserted::Full => panic!("table full"),
                }
            }
        }
        assert_eq!(len(), model.len());
        for (key, meta) in model {
            assert_eq!(remove(key, Home::Device(0)), Some(meta));
        }
        assert_eq!(len(), 0);
    }

    #[test]
    fn a_free_finds_its_pointer_from_any_thread_and_a_reused_address_replaces() {
        let on_device_3 = Meta::new(4096, 1, 3, super::super::DEVICE);
        let key = 0x7f00_0000_1000;
        assert!(matches!(insert(key, on_device_3), Inserted::New));
        // Freed by a thread whose device is another one: found all the same.
        assert_eq!(remove(key, Home::Device(5)), Some(on_device_3));
        assert_eq!(remove(key, Home::Device(3)), None);
        // The runtime hands the address out again without a free we saw.
        assert!(matches!(insert(key, on_device_3), Inserted::New));
        let again = Meta::new(8192, 2, 3, super::super::DEVICE);
        assert!(matches!(insert(key, again), Inserted::Replaced(old) if old == on_device_3));
        let pinned = Meta::new(512, 2, 0, super::super::HOST);
        assert!(matches!(insert(key + 4096, pinned), Inserted::New));
        assert_eq!(remove(key + 4096, Home::Device(3)), Some(pinned));
        assert_eq!(remove(key, Home::Host), Some(again));
    }
}
