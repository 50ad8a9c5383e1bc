//! The filter language of `get_all_records_where` (`db::filter`) on any text.
//!
//! Properties, beyond "never panics, never recurses":
//! 1. Differential: the production parser (an explicit-stack machine, so that no nesting
//!    can overflow the stack) against a plain recursive-descent reading of the grammar in
//!    `db/filter.rs`'s module comment, written here from that comment: same tree, or the
//!    same error (xapi reports whichever of a lexing or parse error comes first). Then
//!    the same evaluation of both trees against one row, including which missing column
//!    stops it (xapi's evaluation order).
//! 2. Round trip: the tree printed fully parenthesised parses to the same tree.

#![no_main]

use libfuzzer_sys::fuzz_target;
use xapi_taskd::db::filter::{Expr, LEX_ERROR, Operand, PARSE_ERROR, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let production = parse(input);
    // The reference recurses; keep it to inputs whose nesting a thread's stack takes.
    if input.len() > 2_000 {
        return;
    }
    let reference = Reference::parse(input);
    match (&production, &reference) {
        (Ok(e), Ok(r)) => {
            assert_eq!(format!("{e:?}"), r.debug(), "{input:?}");
            // One row: some columns missing, the others "a" or "".
            let row = |column: &str| -> Option<&'static str> {
                (column.len() % 3 != 0).then_some(if column.len() % 2 == 0 { "a" } else { "" })
            };
            let mut lookup = row;
            assert_eq!(e.eval(&mut lookup), r.eval(&row), "{input:?}");
            let printed = print(e);
            let again = parse(&printed).unwrap_or_else(|err| panic!("{printed:?}: {err}"));
            assert_eq!(format!("{again:?}"), format!("{e:?}"), "{printed:?}");
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "{input:?}"),
        _ => panic!(
            "{input:?}: production {:?}, reference {:?}",
            production.as_ref().map(|e| format!("{e:?}")),
            reference.as_ref().map(|r| r.debug())
        ),
    }
});

fn operand(o: &Operand) -> String {
    match o {
        Operand::Literal(s) => format!("\"{s}\""),
        Operand::Field(s) => format!("field \"{s}\""),
    }
}

fn print(e: &Expr) -> String {
    match e {
        Expr::True => "true".into(),
        Expr::False => "false".into(),
        Expr::Not(a) => format!("not ({})", print(a)),
        Expr::And(a, b) => format!("({}) and ({})", print(a), print(b)),
        Expr::Or(a, b) => format!("({}) or ({})", print(a), print(b)),
        Expr::Eq(a, b) => format!("{} = {}", operand(a), operand(b)),
    }
}

/// The reference tree.
enum Ref {
    True,
    False,
    Not(Box<Ref>),
    And(Box<Ref>, Box<Ref>),
    Or(Box<Ref>, Box<Ref>),
    Eq(Operand, Operand),
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Eq,
    True,
    False,
    LParen,
    RParen,
    Field,
    And,
    Or,
    Not,
    Ident(String),
    Eof,
}

/// Recursive descent over a lazily lexed input (the lexer of the module comment: skips
/// space, tab and newline; lower-case keywords, no space needed after one; a literal is
/// `"…"` with no escapes; anything else is a lexing error when the parser asks for it).
struct Reference<'a> {
    rest: &'a str,
    peeked: Option<Tok>,
}

impl Ref {
    fn debug(&self) -> String {
        match self {
            Ref::True => "True".into(),
            Ref::False => "False".into(),
            Ref::Not(a) => format!("Not({})", a.debug()),
            Ref::And(a, b) => format!("And({}, {})", a.debug(), b.debug()),
            Ref::Or(a, b) => format!("Or({}, {})", a.debug(), b.debug()),
            Ref::Eq(a, b) => format!("Eq({a:?}, {b:?})"),
        }
    }

    /// `and`/`or` short-circuit left to right; for `a = b`, `b` is looked up first.
    fn eval(&self, row: &dyn Fn(&str) -> Option<&'static str>) -> Result<bool, String> {
        let get = |o: &Operand| match o {
            Operand::Literal(s) => Ok(s.clone()),
            Operand::Field(c) => row(c).map(str::to_string).ok_or_else(|| c.clone()),
        };
        Ok(match self {
            Ref::True => true,
            Ref::False => false,
            Ref::Not(a) => !a.eval(row)?,
            Ref::And(a, b) => a.eval(row)? && b.eval(row)?,
            Ref::Or(a, b) => a.eval(row)? || b.eval(row)?,
            Ref::Eq(a, b) => {
                let right = get(b)?;
                get(a)? == right
            }
        })
    }
}

impl<'a> Reference<'a> {
    fn parse(input: &'a str) -> Result<Ref, String> {
        let mut p = Reference {
            rest: input,
            peeked: None,
        };
        let e = p.expr()?;
        match p.next()? {
            Tok::Eof => Ok(e),
            _ => Err(PARSE_ERROR.into()),
        }
    }

    fn lex(&mut self) -> Result<Tok, String> {
        self.rest = self.rest.trim_start_matches([' ', '\t', '\n']);
        let r = self.rest;
        let (tok, len) = if r.is_empty() {
            (Tok::Eof, 0)
        } else if let Some(after) = r.strip_prefix('"') {
            let end = after.find('"').ok_or_else(|| LEX_ERROR.to_string())?;
            (Tok::Ident(after[..end].to_string()), end + 2)
        } else {
            let words = [
                ("=", Tok::Eq),
                ("(", Tok::LParen),
                (")", Tok::RParen),
                ("true", Tok::True),
                ("false", Tok::False),
                ("field", Tok::Field),
                ("and", Tok::And),
                ("or", Tok::Or),
                ("not", Tok::Not),
            ];
            let (w, t) = words
                .into_iter()
                .find(|(w, _)| r.starts_with(w))
                .ok_or_else(|| LEX_ERROR.to_string())?;
            (t, w.len())
        };
        self.rest = &r[len..];
        Ok(tok)
    }

    fn peek(&mut self) -> Result<Tok, String> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lex()?);
        }
        Ok(self.peeked.clone().unwrap())
    }

    fn next(&mut self) -> Result<Tok, String> {
        let t = self.peek()?;
        self.peeked = None;
        Ok(t)
    }

    /// expr := unit (("and" | "or") unit)*, left-associative.
    fn expr(&mut self) -> Result<Ref, String> {
        let mut e = self.unit()?;
        loop {
            match self.peek()? {
                Tok::And => {
                    self.next()?;
                    e = Ref::And(Box::new(e), Box::new(self.unit()?));
                }
                Tok::Or => {
                    self.next()?;
                    e = Ref::Or(Box::new(e), Box::new(self.unit()?));
                }
                _ => return Ok(e),
            }
        }
    }

    /// unit := "not" expr (it takes everything to `)` or the end) | "true" | "false"
    ///       | "(" expr ")" | value "=" value
    fn unit(&mut self) -> Result<Ref, String> {
        match self.next()? {
            Tok::Not => Ok(Ref::Not(Box::new(self.expr()?))),
            Tok::True => Ok(Ref::True),
            Tok::False => Ok(Ref::False),
            Tok::LParen => {
                let e = self.expr()?;
                match self.next()? {
                    Tok::RParen => Ok(e),
                    _ => Err(PARSE_ERROR.into()),
                }
            }
            first => {
                let left = self.value(first)?;
                match self.next()? {
                    Tok::Eq => {}
                    _ => return Err(PARSE_ERROR.into()),
                }
                let t = self.next()?;
                let right = self.value(t)?;
                Ok(Ref::Eq(left, right))
            }
        }
    }

    fn value(&mut self, first: Tok) -> Result<Operand, String> {
        match first {
            Tok::Ident(s) => Ok(Operand::Literal(s)),
            Tok::Field => match self.next()? {
                Tok::Ident(s) => Ok(Operand::Field(s)),
                _ => Err(PARSE_ERROR.into()),
            },
            _ => Err(PARSE_ERROR.into()),
        }
    }
}
