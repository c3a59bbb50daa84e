//! The two tokenizers torch_npu has used for allocator settings.
//!
//! Both make `,` `:` `[` `]` tokens of their own and glue everything else into
//! words. They differ only in what they drop: the older `lexArgs` drops the
//! space character alone (a tab stays inside the word), PyTorch's
//! `ConfigTokenizer`, used by newer torch_npu, drops every ASCII whitespace byte.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// torch_npu's own `lexArgs` (2.5.1 and the lines of its age).
    Strict,
    /// PyTorch's `ConfigTokenizer` (2.10.0.post4 and later).
    Lenient,
}

impl Dialect {
    pub const ALL: [Dialect; 2] = [Dialect::Strict, Dialect::Lenient];

    fn drops(self, byte: u8) -> bool {
        match self {
            Dialect::Strict => byte == b' ',
            // C's isspace in the "C" locale: space, \t, \n, \v, \f, \r.
            Dialect::Lenient => matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'),
        }
    }
}

/// One token and the byte offset where it starts in the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub text: Vec<u8>,
    pub offset: usize,
}

pub fn is_punct(byte: u8) -> bool {
    matches!(byte, b',' | b':' | b'[' | b']')
}

pub fn tokenize(input: &[u8], dialect: Dialect) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut word = Vec::new();
    let mut word_start = 0;
    for (offset, &byte) in input.iter().enumerate() {
        if is_punct(byte) {
            if !word.is_empty() {
                tokens.push(Token { text: std::mem::take(&mut word), offset: word_start });
            }
            tokens.push(Token { text: vec![byte], offset });
        } else if !dialect.drops(byte) {
            if word.is_empty() {
                word_start = offset;
            }
            word.push(byte);
        }
    }
    if !word.is_empty() {
        tokens.push(Token { text: word, offset: word_start });
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(input: &str, dialect: Dialect) -> Vec<String> {
        tokenize(input.as_bytes(), dialect).into_iter().map(|t| String::from_utf8(t.text).unwrap()).collect()
    }

    #[test]
    fn punctuation_is_always_its_own_token() {
        assert_eq!(
            texts("a:1,b:[2:3,>:4]", Dialect::Strict),
            ["a", ":", "1", ",", "b", ":", "[", "2", ":", "3", ",", ">", ":", "4", "]"]
        );
    }

    #[test]
    fn strict_drops_only_spaces() {
        assert_eq!(texts(" a : 1 ", Dialect::Strict), ["a", ":", "1"]);
        assert_eq!(texts("a:\t1", Dialect::Strict), ["a", ":", "\t1"]);
        assert_eq!(texts("a b:1", Dialect::Strict), ["ab", ":", "1"]);
    }

    #[test]
    fn lenient_drops_all_whitespace() {
        assert_eq!(texts("\ta :\n1\r", Dialect::Lenient), ["a", ":", "1"]);
    }

    #[test]
    fn offsets_point_at_token_starts() {
        let tokens = tokenize(b"  ab :c", Dialect::Strict);
        assert_eq!(tokens.iter().map(|t| t.offset).collect::<Vec<_>>(), [2, 5, 6]);
    }
}
