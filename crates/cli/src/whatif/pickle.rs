//! A restricted pickle decoder for memory snapshots.
//!
//! Python's `pickle.load` runs code named by the file (GLOBAL + REDUCE can
//! call `os.system`), so a snapshot from someone else's machine must never
//! reach it. This decoder interprets only the opcodes that encode plain data
//! (dict, list, tuple, str, bytes, int, float, bool, None, and the memo that
//! shares them) and refuses every opcode that imports a name, calls an object
//! or builds an instance, naming it in the error. Nothing is constructed
//! except those plain values, and nothing is executed.
//!
//! Values live in an arena and are referred to by index, so the memo shares
//! one container the way pickle does (a dict memoized before its items are
//! set is the same dict later), and decoding needs no recursion however deep
//! the nesting: a hostile file cannot overflow the stack. Every length is
//! checked against the bytes left, so memory stays proportional to the file.

use std::collections::HashMap;

/// A decoded value; containers hold indices into [`Pickle::nodes`].
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    None,
    Bool(bool),
    Int(i64),
    /// An integer beyond 64 bits: kept as a marker, its value is not needed.
    BigInt,
    Float(f64),
    Str(Box<str>),
    Bytes(Box<[u8]>),
    List(Vec<usize>),
    Tuple(Vec<usize>),
    Dict(Vec<(usize, usize)>),
}

/// A decoded pickle: the arena and the index of the top-level value.
#[derive(Debug)]
pub struct Pickle {
    pub nodes: Vec<Node>,
    pub root: usize,
}

#[derive(Debug, PartialEq)]
pub enum PickleError {
    /// An opcode that imports, calls or builds objects: refused on purpose.
    Refused { offset: usize, opcode: u8, name: &'static str },
    /// An opcode this decoder does not interpret (not used by snapshots).
    Unsupported { offset: usize, opcode: u8 },
    /// The file ends inside an opcode or before STOP.
    Truncated { offset: usize },
    /// Well-formed opcodes in an impossible order (stack underflow, bad memo...).
    Malformed { offset: usize, what: &'static str },
}

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PickleError::Refused { offset, opcode, name } => write!(
                f,
                "refused pickle opcode {name} (0x{opcode:02x}) at byte {offset}: it imports or calls code, which a \
                 memory snapshot never needs; this file is not a plain snapshot and is not loaded"
            ),
            PickleError::Unsupported { offset, opcode } => {
                write!(f, "unsupported pickle opcode 0x{opcode:02x} at byte {offset} (not used by memory snapshots)")
            }
            PickleError::Truncated { offset } => write!(f, "pickle truncated at byte {offset}"),
            PickleError::Malformed { offset, what } => write!(f, "malformed pickle at byte {offset}: {what}"),
        }
    }
}

/// Opcodes refused by name: each imports a global, calls an object, builds an
/// instance or asks the loader for external objects.
fn refused_name(opcode: u8) -> Option<&'static str> {
    Some(match opcode {
        b'c' => "GLOBAL",
        0x93 => "STACK_GLOBAL",
        b'R' => "REDUCE",
        b'b' => "BUILD",
        b'i' => "INST",
        b'o' => "OBJ",
        0x81 => "NEWOBJ",
        0x92 => "NEWOBJ_EX",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => return None,
    })
}

enum Slot {
    Mark,
    Value(usize),
}

struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of the opcode being interpreted, for errors.
    at: usize,
    nodes: Vec<Node>,
    stack: Vec<Slot>,
    memo: HashMap<u64, usize>,
}

pub fn decode(data: &[u8]) -> Result<Pickle, PickleError> {
    let mut decoder = Decoder { data, pos: 0, at: 0, nodes: Vec::new(), stack: Vec::new(), memo: HashMap::new() };
    decoder.run()
}

impl<'a> Decoder<'a> {
    fn malformed(&self, what: &'static str) -> PickleError {
        PickleError::Malformed { offset: self.at, what }
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], PickleError> {
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            return Err(PickleError::Truncated { offset: self.at });
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.data[start..self.pos])
    }

    fn uint(&mut self, width: usize) -> Result<u64, PickleError> {
        let bytes = self.take(width as u64)?;
        Ok(bytes.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn push(&mut self, node: Node) {
        self.nodes.push(node);
        self.stack.push(Slot::Value(self.nodes.len() - 1));
    }

    fn pop(&mut self) -> Result<usize, PickleError> {
        match self.stack.pop() {
            Some(Slot::Value(index)) => Ok(index),
            Some(Slot::Mark) => Err(self.malformed("a value was expected, found a mark")),
            None => Err(self.malformed("stack underflow")),
        }
    }

    fn top(&self) -> Result<usize, PickleError> {
        match self.stack.last() {
            Some(Slot::Value(index)) => Ok(*index),
            _ => Err(self.malformed("a value was expected on the stack")),
        }
    }

    /// The values above the topmost mark, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<usize>, PickleError> {
        let Some(mark) = self.stack.iter().rposition(|s| matches!(s, Slot::Mark)) else {
            return Err(self.malformed("no mark on the stack"));
        };
        let items = self
            .stack
            .drain(mark + 1..)
            .map(|s| match s {
                Slot::Value(index) => index,
                Slot::Mark => unreachable!("rposition found the topmost mark"),
            })
            .collect();
        self.stack.pop();
        Ok(items)
    }

    fn string(&mut self, len: u64) -> Result<(), PickleError> {
        let bytes = self.take(len)?;
        let text = std::str::from_utf8(bytes).map_err(|_| self.malformed("string is not UTF-8"))?;
        self.push(Node::Str(text.into()));
        Ok(())
    }

    fn bytes(&mut self, len: u64) -> Result<(), PickleError> {
        let bytes = self.take(len)?;
        self.push(Node::Bytes(bytes.into()));
        Ok(())
    }

    /// Little-endian two's complement of LONG1/LONG4.
    fn long(&mut self, len: u64) -> Result<(), PickleError> {
        let bytes = self.take(len)?;
        let node = if bytes.is_empty() {
            Node::Int(0)
        } else if bytes.len() <= 8 {
            let negative = bytes[bytes.len() - 1] & 0x80 != 0;
            let mut buf = [if negative { 0xff } else { 0 }; 8];
            buf[..bytes.len()].copy_from_slice(bytes);
            Node::Int(i64::from_le_bytes(buf))
        } else {
            Node::BigInt
        };
        self.push(node);
        Ok(())
    }

    fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let top = self.top()?;
        self.memo.insert(key, top);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<(), PickleError> {
        let index = *self.memo.get(&key).ok_or_else(|| self.malformed("memo key not defined"))?;
        self.stack.push(Slot::Value(index));
        Ok(())
    }

    fn container(&mut self, index: usize) -> Result<&mut Node, PickleError> {
        let at = self.at;
        self.nodes.get_mut(index).ok_or(PickleError::Malformed { offset: at, what: "bad node" })
    }

    fn set_items(&mut self, items: Vec<usize>) -> Result<(), PickleError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.malformed("odd number of items for a dict"));
        }
        let target = self.top()?;
        let malformed = self.malformed("items set on something that is not a dict");
        match self.container(target)? {
            Node::Dict(entries) => {
                entries.extend(items.chunks_exact(2).map(|pair| (pair[0], pair[1])));
                Ok(())
            }
            _ => Err(malformed),
        }
    }

    fn append(&mut self, items: Vec<usize>) -> Result<(), PickleError> {
        let target = self.top()?;
        let malformed = self.malformed("append to something that is not a list");
        match self.container(target)? {
            Node::List(list) => {
                list.extend(items);
                Ok(())
            }
            _ => Err(malformed),
        }
    }

    fn run(&mut self) -> Result<Pickle, PickleError> {
        loop {
            self.at = self.pos;
            let Some(&opcode) = self.data.get(self.pos) else {
                return Err(PickleError::Truncated { offset: self.pos });
            };
            self.pos += 1;
            if let Some(name) = refused_name(opcode) {
                return Err(PickleError::Refused { offset: self.at, opcode, name });
            }
            match opcode {
                0x80 => {
                    // PROTO: protocols 2 to 5 share the opcodes read here.
                    let version = self.uint(1)?;
                    if !(2..=5).contains(&version) {
                        return Err(self.malformed("pickle protocol outside 2..5"));
                    }
                }
                0x95 => {
                    // FRAME: a length prefix for buffering; the opcodes follow inline.
                    self.uint(8)?;
                }
                b'.' => {
                    // STOP
                    let root = self.pop()?;
                    return Ok(Pickle { nodes: std::mem::take(&mut self.nodes), root });
                }
                b'(' => self.stack.push(Slot::Mark),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self.top()?;
                    self.stack.push(Slot::Value(top));
                }
                b'N' => self.push(Node::None),
                0x88 => self.push(Node::Bool(true)),
                0x89 => self.push(Node::Bool(false)),
                b'J' => {
                    let value = self.uint(4)? as u32 as i32;
                    self.push(Node::Int(i64::from(value)));
                }
                b'K' => {
                    let value = self.uint(1)?;
                    self.push(Node::Int(value as i64));
                }
                b'M' => {
                    let value = self.uint(2)?;
                    self.push(Node::Int(value as i64));
                }
                0x8a => {
                    let len = self.uint(1)?;
                    self.long(len)?;
                }
                0x8b => {
                    let len = self.uint(4)?;
                    self.long(len)?;
                }
                b'G' => {
                    let bytes = self.take(8)?;
                    let mut buf = [0u8; 8];
                    buf.copy_from_slice(bytes);
                    self.push(Node::Float(f64::from_be_bytes(buf)));
                }
                0x8c => {
                    let len = self.uint(1)?;
                    self.string(len)?;
                }
                b'X' => {
                    let len = self.uint(4)?;
                    self.string(len)?;
                }
                0x8d => {
                    let len = self.uint(8)?;
                    self.string(len)?;
                }
                b'C' => {
                    let len = self.uint(1)?;
                    self.bytes(len)?;
                }
                b'B' => {
                    let len = self.uint(4)?;
                    self.bytes(len)?;
                }
                0x8e => {
                    let len = self.uint(8)?;
                    self.bytes(len)?;
                }
                b'}' => self.push(Node::Dict(Vec::new())),
                b']' => self.push(Node::List(Vec::new())),
                b')' => self.push(Node::Tuple(Vec::new())),
                b'd' => {
                    let items = self.pop_mark()?;
                    self.push(Node::Dict(Vec::new()));
                    self.set_items(items)?;
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Node::List(items));
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Node::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = usize::from(opcode - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Node::Tuple(items));
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.set_items(vec![key, value])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'a' => {
                    let value = self.pop()?;
                    self.append(vec![value])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                0x94 => {
                    let key = self.memo.len() as u64;
                    self.memo_put(key)?;
                }
                b'q' => {
                    let key = self.uint(1)?;
                    self.memo_put(key)?;
                }
                b'r' => {
                    let key = self.uint(4)?;
                    self.memo_put(key)?;
                }
                b'h' => {
                    let key = self.uint(1)?;
                    self.memo_get(key)?;
                }
                b'j' => {
                    let key = self.uint(4)?;
                    self.memo_get(key)?;
                }
                _ => return Err(PickleError::Unsupported { offset: self.at, opcode }),
            }
        }
    }
}

impl Pickle {
    pub fn node(&self, index: usize) -> &Node {
        // Indices come from the decoder itself and are always in range.
        self.nodes.get(index).unwrap_or(&Node::None)
    }

    /// The value under string key `key` of the dict at `index`.
    pub fn get(&self, index: usize, key: &str) -> Option<usize> {
        match self.node(index) {
            Node::Dict(entries) => {
                entries.iter().find(|(k, _)| matches!(self.node(*k), Node::Str(s) if &**s == key)).map(|&(_, v)| v)
            }
            _ => None,
        }
    }

    pub fn int(&self, index: usize) -> Option<i64> {
        match self.node(index) {
            Node::Int(value) => Some(*value),
            Node::Bool(value) => Some(i64::from(*value)),
            _ => None,
        }
    }

    pub fn str(&self, index: usize) -> Option<&str> {
        match self.node(index) {
            Node::Str(text) => Some(text),
            _ => None,
        }
    }

    /// The items of a list or tuple.
    pub fn items(&self, index: usize) -> Option<&[usize]> {
        match self.node(index) {
            Node::List(items) | Node::Tuple(items) => Some(items),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with CPython 3.11: pickle.dumps({'a': [1, -2, 3.5, None, True], 'b': ('x', b'y'), 'c': 2**40}, protocol=4)
    const PLAIN: &[u8] = b"\x80\x04\x959\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94]\x94(K\x01J\xfe\xff\xff\xffG@\x0c\x00\x00\x00\x00\x00\x00N\x88e\x8c\x01b\x94\x8c\x01x\x94C\x01y\x94\x86\x94\x8c\x01c\x94\x8a\x06\x00\x00\x00\x00\x00\x01u.";

    #[test]
    fn plain_values() {
        let p = decode(PLAIN).expect("decodes");
        let a = p.items(p.get(p.root, "a").unwrap()).unwrap().to_vec();
        assert_eq!(p.int(a[0]), Some(1));
        assert_eq!(p.int(a[1]), Some(-2));
        assert_eq!(p.node(a[2]), &Node::Float(3.5));
        assert_eq!(p.node(a[3]), &Node::None);
        assert_eq!(p.node(a[4]), &Node::Bool(true));
        let b = p.items(p.get(p.root, "b").unwrap()).unwrap().to_vec();
        assert_eq!(p.str(b[0]), Some("x"));
        assert_eq!(p.node(b[1]), &Node::Bytes(Box::from(&b"y"[..])));
        assert_eq!(p.int(p.get(p.root, "c").unwrap()), Some(1 << 40));
    }

    // pickle.dumps(os.system-call object, protocol=2): cposix\nsystem\n... REDUCE
    const GLOBAL_REDUCE: &[u8] = b"\x80\x02cposix\nsystem\nq\x00X\x0c\x00\x00\x00touch /tmp/xq\x01\x85q\x02Rq\x03.";
    // protocol 4 spells the import STACK_GLOBAL
    const STACK_GLOBAL: &[u8] = b"\x80\x04\x8c\x05posix\x94\x8c\x06system\x94\x93\x94\x8c\x04true\x94\x85\x94R\x94.";

    #[test]
    fn code_is_refused() {
        assert!(matches!(decode(GLOBAL_REDUCE), Err(PickleError::Refused { name: "GLOBAL", offset: 2, .. })));
        assert!(matches!(decode(STACK_GLOBAL), Err(PickleError::Refused { name: "STACK_GLOBAL", .. })));
        for (opcode, name) in [(b'R', "REDUCE"), (b'b', "BUILD"), (0x81, "NEWOBJ"), (b'i', "INST"), (b'o', "OBJ")] {
            let data = [0x80, 4, b'N', b'N', opcode, b'.'];
            match decode(&data) {
                Err(PickleError::Refused { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{name}: {other:?}"),
            }
        }
        let message = decode(GLOBAL_REDUCE).unwrap_err().to_string();
        assert!(message.contains("refused pickle opcode GLOBAL"), "{message}");
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for data in [
            &b""[..],
            b"\x80",
            b"\x80\x04",
            b"\x80\x04.",
            b"\x80\x04X\xff\xff\xff\xff",
            b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\x80\x04h\x05.",
            b"\x80\x04Ns.",
            b"\x80\x04]N(u.",
            b"\x80\x04(e.",
            b"\x80\x04\x94.",
            b"\x80\x01N.",
            b"\x80\x04I1\n.",
            b"\x80\x04\x8c\x01\xff.",
        ] {
            assert!(decode(data).is_err(), "{data:?}");
        }
    }

    #[test]
    fn memo_shares_containers_and_cycles_do_not_hang() {
        // l = []; l.append(l): EMPTY_LIST MEMOIZE BINGET 0 APPEND STOP
        let p = decode(b"\x80\x04]\x94h\x00a.").unwrap();
        assert_eq!(p.items(p.root), Some(&[p.root][..]));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // Opcodes the decoder interprets, mixed at random: every mix must end
        // in a value or an error, never a panic.
        const ALPHABET: &[u8] = b"}](\x94\x8c\x01asuaeKJNh\x00q\x01.)\x85\x86t0";
        let mut state = 0x2545F4914F6CDD1Du64;
        for _ in 0..20_000 {
            let mut data = vec![0x80, 4];
            for _ in 0..(state % 40) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                data.push(ALPHABET[(state % ALPHABET.len() as u64) as usize]);
            }
            let _ = decode(&data);
        }
    }
}
