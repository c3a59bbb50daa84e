//! Allocator keys and the rules their values must follow: the vocabulary a
//! runtime's facts are written in.

/// Which torch_npu lines accept a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Since {
    /// Every line that knows `expandable_segments` (2.1.0-6.0.rc1 on), 2.5.1 included.
    Legacy,
    /// Rejected by 2.5.1, accepted by 2.10.0.post4.
    Newer,
    /// Seen only in torch_npu's development branch.
    Master,
    /// Looked up in the runtime's survey of its released versions.
    Surveyed,
}

/// The value rule of one key, as torch_npu checks it.
#[derive(Clone, Copy, Debug)]
pub enum ValueRule {
    /// Exactly `True` or `False`.
    Bool,
    /// Decimal digits, strictly greater than the bound.
    MegabytesAbove(u64),
    /// Decimal digits within an inclusive range.
    IntRange(u64, u64),
    /// Decimal digits.
    UnsignedInt,
    /// A number with 0 < x < 1.
    OpenFraction,
    /// A number with 0 <= x <= 1.
    ClosedFraction,
    /// One literal word.
    Literal(&'static str),
    /// One of these words (CUDA's `backend:native|cudaMallocAsync`).
    OneOf(&'static [&'static str]),
    /// `N` (power of two or 0) or a list `[256:1,512:2,>:8]`.
    RoundupDivisions,
    /// What C++'s `std::stoull` reads, as torch_npu's newer keys do (probed on
    /// the real parsers, tests/real_clients/torch_npu.rs): optional leading
    /// whitespace and sign, then digits; what follows them is ignored ("1g"
    /// is 1, "0.5" is 0) and a minus wraps ("-1" is the largest value).
    CxxUnsigned,
    /// A number in [0, 1] as C++'s `std::stod` reads it: the longest decimal
    /// prefix ("1g" is 1).
    CxxClosedFraction,
    /// `RoundupDivisions` with `N` read by `std::stoi` ("1g" is 1, "0.5" is 0).
    CxxRoundupDivisions,
    /// Any one word: a key whose values nobody probed.
    AnyWord,
}

#[derive(Clone, Copy, Debug)]
pub struct KeySpec {
    pub name: &'static str,
    pub rule: ValueRule,
    pub since: Since,
}

impl KeySpec {
    pub const fn new(name: &'static str, rule: ValueRule, since: Since) -> Self {
        KeySpec { name, rule, since }
    }
}

pub fn find<'a>(keys: &'a [KeySpec], name: &[u8]) -> Option<&'a KeySpec> {
    keys.iter().find(|k| k.name.as_bytes() == name)
}

/// A key the allocator refuses together with the key this product turns on.
#[derive(Clone, Copy, Debug)]
pub struct Conflict {
    pub key: &'static str,
    /// The values that conflict; empty: every value.
    pub values: &'static [&'static str],
    /// The lines that refuse the combination. A decision at load cannot know
    /// the installed line and leaves every conflict alone; `check`, which
    /// knows it, says whether the installed line refuses it.
    pub since: Since,
    /// Why it is left alone, when not because the framework refuses the pair.
    pub reason: Option<&'static str>,
}

impl Conflict {
    /// A key that conflicts whatever its value.
    pub const fn key(key: &'static str, since: Since) -> Self {
        Conflict { key, values: &[], since, reason: None }
    }

    /// A key that conflicts with some of its values only.
    pub const fn values(key: &'static str, values: &'static [&'static str], since: Since) -> Self {
        Conflict { key, values, since, reason: None }
    }

    /// The same conflict, said with its own reason.
    pub const fn because(self, reason: &'static str) -> Self {
        Conflict { reason: Some(reason), ..self }
    }
}

/// How an installed version of the framework treats a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acceptance {
    Accepted,
    /// Known to be refused ("Unrecognized CachingAllocator option").
    Rejected,
    /// Probably refused; not checked against that version.
    MayBeRejected,
}

impl Acceptance {
    pub fn name(self) -> &'static str {
        match self {
            Acceptance::Accepted => "accepted",
            Acceptance::Rejected => "rejected",
            Acceptance::MayBeRejected => "may-be-rejected",
        }
    }
}
