//! xapi's row-filter language, used by `<class>.get_all_records_where` and
//! `<class>.get_all_where` (`ocaml/database/db_filter_lex.mll`, `db_filter_parse.mly`,
//! `db_filter.ml`).
//!
//! ```text
//! expr  := value "=" value | expr "and" expr | expr "or" expr | "not" expr
//!        | "true" | "false" | "(" expr ")"
//! value := "\"" chars "\""          (a literal; any bytes but `"`, no escapes)
//!        | "field" "\"" chars "\""  (a database column: `name__label`, `_ref`, `session`)
//! ```
//!
//! `and` and `or` share one precedence level and associate to the left
//! (`a or b and c` is `(a or b) and c`). `not` is declared *below* them in the `.mly`
//! (`%right LNOT` before `%left LAND LOR`), so it takes everything up to the closing
//! parenthesis or the end: `not a and b` is `not (a and b)`.
//!
//! The lexer skips space, tab and newline only (not CR), knows lower-case keywords only,
//! needs no space after a keyword (`nottrue` is `not true`), and has no catch-all rule: any
//! other character, or a literal with no closing quote, makes ocamllex raise
//! `Failure "lexing: empty token"`. A token sequence the grammar cannot continue raises
//! `Parsing.Parse_error`. The ocamlyacc parser pulls tokens one at a time, so whichever
//! of the two problems comes first in the input is the one reported. xapi reports either
//! as `INVALID_VALUE [expr; Printexc.to_string exn]`.
//!
//! Parsing, evaluation, formatting and dropping use explicit stacks, never recursion, so
//! any nesting a request can carry is handled like xapi (whose parser stack lives on
//! the heap) without overflowing ours.

use std::fmt;

/// `Printexc.to_string Parsing.Parse_error`: the input is not a sentence of the grammar.
pub const PARSE_ERROR: &str = "Stdlib.Parsing.Parse_error";
/// `Printexc.to_string (Failure "lexing: empty token")`: no lexer rule matches.
pub const LEX_ERROR: &str = "Failure(\"lexing: empty token\")";

/// A predicate on one row (`Db_filter_types.expr`).
pub enum Expr {
    True,
    False,
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Eq(Operand, Operand),
}

/// One side of `=` (`Db_filter_types._val`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    Literal(String),
    Field(String),
}

#[derive(Clone, Copy)]
enum Token<'a> {
    Eq,
    True,
    False,
    LParen,
    RParen,
    Field,
    And,
    Or,
    Not,
    Ident(&'a str),
    Eof,
}

/// The keyword rules; none is a prefix of another, so "longest match" is "the one that matches".
const KEYWORDS: [(&str, Token<'static>); 6] = [
    ("true", Token::True),
    ("false", Token::False),
    ("field", Token::Field),
    ("and", Token::And),
    ("or", Token::Or),
    ("not", Token::Not),
];

/// The token at byte `*pos` of `input`; advances `*pos` past it.
fn next_token<'a>(input: &'a str, pos: &mut usize) -> Result<Token<'a>, String> {
    let skipped = input[*pos..].trim_start_matches([' ', '\t', '\n']);
    *pos = input.len() - skipped.len();
    let (token, len) = match skipped.as_bytes().first() {
        None => (Token::Eof, 0),
        Some(b'=') => (Token::Eq, 1),
        Some(b'(') => (Token::LParen, 1),
        Some(b')') => (Token::RParen, 1),
        Some(b'"') => match skipped[1..].find('"') {
            Some(n) => (Token::Ident(&skipped[1..=n]), n + 2),
            None => return Err(LEX_ERROR.to_string()),
        },
        Some(_) => KEYWORDS
            .iter()
            .find(|(word, _)| skipped.starts_with(word))
            .map(|&(word, token)| (token, word.len()))
            .ok_or_else(|| LEX_ERROR.to_string())?,
    };
    *pos += len;
    Ok(token)
}

/// What is pending to the left of the current position.
enum Frame {
    Open,
    Not,
    And(Expr),
    Or(Expr),
}

/// The parser's stack (on the heap) and how many `(` it holds.
struct Pending {
    frames: Vec<Frame>,
    open_parens: usize,
}

impl Pending {
    /// Something that awaits an expression: `(`, `not`, `e and`, `e or`.
    fn push(&mut self, frame: Frame) -> State {
        self.open_parens += usize::from(matches!(frame, Frame::Open));
        self.frames.push(frame);
        State::Start
    }

    /// A complete operand `e` arrived: a pending `l and`/`l or` takes it at once (left
    /// associativity); a pending `not` or `(` waits for the end of its scope.
    fn complete(&mut self, e: Expr) -> State {
        let e = match self.frames.pop() {
            Some(Frame::And(l)) => Expr::And(Box::new(l), Box::new(e)),
            Some(Frame::Or(l)) => Expr::Or(Box::new(l), Box::new(e)),
            Some(other) => {
                self.frames.push(other);
                e
            }
            None => e,
        };
        State::After(e)
    }

    /// At `)` or the end: applies the pending `not`s and operators down to the innermost
    /// `(` (which is removed) or the bottom.
    fn close(&mut self, mut e: Expr) -> Expr {
        while let Some(frame) = self.frames.pop() {
            e = match frame {
                Frame::Open => {
                    self.open_parens -= 1;
                    return e;
                }
                Frame::Not => Expr::Not(Box::new(e)),
                Frame::And(l) => Expr::And(Box::new(l), Box::new(e)),
                Frame::Or(l) => Expr::Or(Box::new(l), Box::new(e)),
            };
        }
        e
    }
}

/// Where in the grammar the parser stands.
enum State {
    /// An expression must start here.
    Start,
    /// After `field`: the column name; `Some(lhs)` when it is the right-hand side.
    FieldName(Option<Operand>),
    /// After a left-hand value: `=` must follow.
    NeedEq(Operand),
    /// After `=`: the right-hand value.
    Rhs(Operand),
    /// A complete expression; `and`, `or`, `)` or the end may follow.
    After(Expr),
}

/// Parses a filter. The error is the text xapi puts second in
/// `INVALID_VALUE [expr; text]`: [`PARSE_ERROR`] or [`LEX_ERROR`].
pub fn parse(input: &str) -> Result<Expr, String> {
    use {Operand::Field as F, Operand::Literal as L};
    let mut pos = 0;
    let mut p = Pending {
        frames: Vec::new(),
        open_parens: 0,
    };
    let mut state = State::Start;
    loop {
        state = match (state, next_token(input, &mut pos)?) {
            (State::Start, Token::True) => p.complete(Expr::True),
            (State::Start, Token::False) => p.complete(Expr::False),
            (State::Start, Token::LParen) => p.push(Frame::Open),
            (State::Start, Token::Not) => p.push(Frame::Not),
            (State::Start, Token::Ident(s)) => State::NeedEq(L(s.into())),
            (State::Start, Token::Field) => State::FieldName(None),
            (State::FieldName(None), Token::Ident(s)) => State::NeedEq(F(s.into())),
            (State::FieldName(Some(l)), Token::Ident(s)) => p.complete(Expr::Eq(l, F(s.into()))),
            (State::NeedEq(l), Token::Eq) => State::Rhs(l),
            (State::Rhs(l), Token::Ident(s)) => p.complete(Expr::Eq(l, L(s.into()))),
            (State::Rhs(l), Token::Field) => State::FieldName(Some(l)),
            (State::After(e), Token::And) => p.push(Frame::And(e)),
            (State::After(e), Token::Or) => p.push(Frame::Or(e)),
            (State::After(e), Token::RParen) if p.open_parens > 0 => {
                let inner = p.close(e);
                p.complete(inner)
            }
            (State::After(e), Token::Eof) if p.open_parens == 0 => return Ok(p.close(e)),
            _ => return Err(PARSE_ERROR.to_string()),
        };
    }
}

enum Step<'a> {
    Eval(&'a Expr),
    Negate,
    AndThen(&'a Expr),
    OrElse(&'a Expr),
}

impl Expr {
    /// Evaluates the predicate on one row. `lookup(column)` gives the column's database
    /// string form (see `dbstring`), or `None` if the table has no such column; evaluation
    /// then stops with `Err(column)` (xapi: `INTERNAL_ERROR ["missing field"; column; ""]`).
    ///
    /// Order as in `Db_filter.eval_expr`: `and`/`or` short-circuit left to right, so a bad
    /// column in an unevaluated branch is never noticed; for `a = b`, OCaml evaluates the
    /// arguments of `f (lookup a) (lookup b)` right to left, so `b` is looked up first.
    pub fn eval<'v>(
        &self,
        lookup: &mut dyn FnMut(&str) -> Option<&'v str>,
    ) -> Result<bool, String> {
        let mut steps = vec![Step::Eval(self)];
        let mut value = false;
        while let Some(step) = steps.pop() {
            match step {
                Step::Eval(Expr::True) => value = true,
                Step::Eval(Expr::False) => value = false,
                Step::Eval(Expr::Not(a)) => steps.extend([Step::Negate, Step::Eval(a)]),
                Step::Eval(Expr::And(a, b)) => steps.extend([Step::AndThen(b), Step::Eval(a)]),
                Step::Eval(Expr::Or(a, b)) => steps.extend([Step::OrElse(b), Step::Eval(a)]),
                Step::Eval(Expr::Eq(a, b)) => {
                    let right = operand(b, lookup)?;
                    let left = operand(a, lookup)?;
                    value = left == right;
                }
                Step::Negate => value = !value,
                Step::AndThen(b) if value => steps.push(Step::Eval(b)),
                Step::OrElse(b) if !value => steps.push(Step::Eval(b)),
                Step::AndThen(_) | Step::OrElse(_) => {}
            }
        }
        Ok(value)
    }
}

fn operand<'x, 'a: 'x, 'v: 'x>(
    op: &'a Operand,
    lookup: &mut dyn FnMut(&str) -> Option<&'v str>,
) -> Result<&'x str, String> {
    match op {
        Operand::Literal(s) => Ok(s),
        Operand::Field(column) => lookup(column).ok_or_else(|| column.clone()),
    }
}

/// How big an expression is: its terms (`true`, `false`, `=`, `and`, `or`, `not`), its
/// nesting depth, and the distinct columns it names (in first-seen order).
#[derive(Debug, PartialEq, Eq)]
pub struct Shape<'a> {
    pub nodes: usize,
    pub depth: usize,
    pub columns: Vec<&'a str>,
}

impl Expr {
    /// The expression's [`Shape`], without recursing.
    pub fn shape(&self) -> Shape<'_> {
        let mut shape = Shape {
            nodes: 0,
            depth: 0,
            columns: Vec::new(),
        };
        let mut seen = std::collections::HashSet::new();
        let mut todo = vec![(self, 1usize)];
        while let Some((e, depth)) = todo.pop() {
            shape.nodes += 1;
            shape.depth = shape.depth.max(depth);
            match e {
                Expr::True | Expr::False => {}
                Expr::Not(a) => todo.push((a, depth + 1)),
                Expr::And(a, b) | Expr::Or(a, b) => {
                    todo.push((b, depth + 1));
                    todo.push((a, depth + 1));
                }
                Expr::Eq(a, b) => {
                    for op in [a, b] {
                        if let Operand::Field(c) = op
                            && seen.insert(c.as_str())
                        {
                            shape.columns.push(c);
                        }
                    }
                }
            }
        }
        shape
    }
}

/// Prints the tree, e.g. `And(Eq(Field("status"), Literal("pending")), Not(True))`.
impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        enum Item<'a> {
            N(&'a Expr),
            T(&'static str),
        }
        use Item::{N, T};
        let mut todo = vec![N(self)];
        while let Some(item) = todo.pop() {
            match item {
                T(s) => f.write_str(s)?,
                N(Expr::True) => f.write_str("True")?,
                N(Expr::False) => f.write_str("False")?,
                N(Expr::Eq(a, b)) => write!(f, "Eq({a:?}, {b:?})")?,
                N(Expr::Not(a)) => todo.extend([T(")"), N(a), T("Not(")]),
                N(Expr::And(a, b)) => todo.extend([T(")"), N(b), T(", "), N(a), T("And(")]),
                N(Expr::Or(a, b)) => todo.extend([T(")"), N(b), T(", "), N(a), T("Or(")]),
            }
        }
        Ok(())
    }
}

/// Frees deep trees without recursing: inner nodes are moved out of their boxes onto a
/// heap stack (leaving `True` behind) before the boxes are freed.
impl Drop for Expr {
    fn drop(&mut self) {
        let mut detached = Vec::new();
        detach_children(self, &mut detached);
        while let Some(mut e) = detached.pop() {
            detach_children(&mut e, &mut detached);
        }
    }
}

fn detach_children(e: &mut Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::Not(a) => out.push(std::mem::replace(&mut **a, Expr::True)),
        Expr::And(a, b) | Expr::Or(a, b) => {
            out.push(std::mem::replace(&mut **a, Expr::True));
            out.push(std::mem::replace(&mut **b, Expr::True));
        }
        Expr::True | Expr::False | Expr::Eq(..) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn tree(input: &str) -> String {
        format!("{:?}", parse(input).expect(input))
    }

    fn err(input: &str) -> String {
        parse(input).map(|e| format!("{e:?}")).expect_err(input)
    }

    #[test]
    fn parses_precedence_and_lexing_like_xapi() {
        let status = r#"Eq(Field("status"), Literal("pending"))"#;
        let label = r#"Eq(Field("name__label"), Literal("Async.VM.clone"))"#;
        let spec = r#"field "name__label" = "Async.VM.clone" and not (field "status" = "pending")"#;
        assert_eq!(tree(r#"field "status" = "pending""#), status);
        assert_eq!(tree(spec), format!("And({label}, Not({status}))"));
        #[rustfmt::skip]
        let cases = [
            ("true", "True"),
            (" \t\nfalse\n", "False"),
            (r#""a" = "a""#, r#"Eq(Literal("a"), Literal("a"))"#),
            (r#"field "x" = field "y""#, r#"Eq(Field("x"), Field("y"))"#),
            // `and`/`or`: one level, left-associative.
            ("true or false and true", "And(Or(True, False), True)"),
            ("true and false or true", "Or(And(True, False), True)"),
            ("true or (false and true)", "Or(True, And(False, True))"),
            // `not` has the lowest precedence: it reaches to `)` or the end.
            ("not true and false", "Not(And(True, False))"),
            ("true and not false or true", "And(True, Not(Or(False, True)))"),
            ("((not (true)) or false)", "Or(Not(True), False)"),
            // No spaces needed; literals take anything but `"`, with no escapes.
            ("nottrue", "Not(True)"),
            (r#"not(false)or"a"="b""#, r#"Not(Or(False, Eq(Literal("a"), Literal("b"))))"#),
            (r#"field"x"="""#, r#"Eq(Field("x"), Literal(""))"#),
            ("\"a\\\" = \"=\n(é'\"", r#"Eq(Literal("a\\"), Literal("=\n(é'"))"#),
        ];
        for (input, want) in cases {
            assert_eq!(tree(input), want, "{input:?}");
        }
    }

    #[test]
    fn each_error_class_has_xapis_text() {
        assert_eq!(PARSE_ERROR, "Stdlib.Parsing.Parse_error");
        assert_eq!(LEX_ERROR, r#"Failure("lexing: empty token")"#);
        #[rustfmt::skip]
        let syntax = [
            "", " \n", "true true", r#""a""#, r#""a" ="#, "field", r#"field "x""#, r#"= "a""#,
            "(true", "true)", "()", "not", "true and", "and true", "true == true",
            r#""a" = "b" = "c""#, r#"field field "x" = "y""#, r#"field "x" = true"#,
            // Nothing after the offending token is ever lexed.
            "true true @", ") @", r#"true ) "open"#,
        ];
        for input in syntax {
            assert_eq!(err(input), PARSE_ERROR, "{input:?}");
        }
        #[rustfmt::skip]
        let lexical = [
            "TRUE", "True", "fals", "x", "true\r", r#""unterminated"#, "'a' = 'b'", "(@",
            r#"field "a" = "b" && true"#, "not\u{a0}true", "true @ true", r#"true and "open"#,
        ];
        for input in lexical {
            assert_eq!(err(input), LEX_ERROR, "{input:?}");
        }
    }

    #[test]
    fn evaluates_against_a_row_in_xapis_order() {
        let row = HashMap::from([
            ("_ref", "OpaqueRef:t1"),
            ("name__label", "Async.VM.clone"),
            ("status", "success"),
            ("progress", "1"),
            ("session", "OpaqueRef:s1"),
        ]);
        let spec = r#"field "name__label" = "Async.VM.clone" and not (field "status" = "pending")"#;
        let missing = |c: &str| Err::<bool, String>(c.into());
        #[rustfmt::skip]
        let cases = [
            (r#"field "status" = "pending""#, Ok(false)),
            (r#"field "status" = "success""#, Ok(true)),
            (spec, Ok(true)),
            (r#""OpaqueRef:t1" = field "_ref" and field "progress" = "1""#, Ok(true)),
            (r#"field "session" = field "_ref""#, Ok(false)),
            (r#""a" = "b" or not true"#, Ok(false)),
            ("not not true", Ok(true)),
            // Unknown columns fail only when evaluated; `and`/`or` short-circuit.
            (r#"field "name_label" = "x""#, missing("name_label")),
            (r#"field "bogus" = "x" and false"#, missing("bogus")),
            (r#"false and field "bogus" = "x""#, Ok(false)),
            (r#"true or field "bogus" = "x""#, Ok(true)),
            (r#"false or field "bogus" = "x""#, missing("bogus")),
            // OCaml evaluates `f (lookup a) (lookup b)` right to left.
            (r#"field "a" = field "b""#, missing("b")),
        ];
        for (input, want) in cases {
            let mut lookup = |c: &str| row.get(c).copied();
            assert_eq!(parse(input).unwrap().eval(&mut lookup), want, "{input:?}");
        }
    }

    #[test]
    fn shape_counts_terms_depth_and_distinct_columns() {
        let e = parse(r#"field "a" = "1" and (not field "b" = field "a" or true)"#).unwrap();
        assert_eq!(
            e.shape(),
            Shape {
                nodes: 6,
                depth: 4,
                columns: vec!["a", "b"]
            }
        );
        let deep = parse(&format!("{}true", "not ".repeat(10_000))).unwrap();
        assert_eq!((deep.shape().nodes, deep.shape().depth), (10_001, 10_001));
    }

    #[test]
    fn hostile_nesting_neither_recurses_nor_panics() {
        let n = 150_000;
        let run = move || {
            assert_eq!(
                tree(&format!("{}true{}", "(".repeat(n), ")".repeat(n))),
                "True"
            );
            assert_eq!(err(&"(".repeat(300_000)), PARSE_ERROR);
            assert_eq!(
                err(&format!("{}true{}", "(".repeat(n), ")".repeat(n + 1))),
                PARSE_ERROR
            );
            let nots = parse(&format!("{}true", "not ".repeat(n))).unwrap();
            assert_eq!(nots.eval(&mut |_| None), Ok(true));
            assert_eq!(format!("{nots:?}").len(), 5 * n + 4);
            let chain = format!("true{}", r#" and field "x" = "y""#.repeat(n / 10));
            assert_eq!(parse(&chain).unwrap().eval(&mut |_| Some("y")), Ok(true));
            let right = format!("{}false{}", "true and (".repeat(n / 5), ")".repeat(n / 5));
            assert_eq!(parse(&right).unwrap().eval(&mut |_| None), Ok(false));
        };
        // A small stack: recursion proportional to the nesting would overflow it.
        let worker = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(run)
            .unwrap();
        worker.join().expect("deep inputs are handled iteratively");
    }
}
