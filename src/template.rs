//! Checks alert annotation templates the way Prometheus parses them (Go's `text/template` with
//! Prometheus' functions and the `$labels`, `$value`, `$externalLabels`, `$externalURL`
//! variables), so a thresholds file that `redline check` accepts can never produce a rule file
//! that `promtool check rules` or Prometheus refuses.
//!
//! This follows Go's lexer and parser closely for everything decided at parse time: delimiters
//! and trim markers, comments, quoted strings and their escapes, numbers, field/variable syntax,
//! declared variables, known functions, pipelines and control structures (`if`/`else`/`range`/
//! `with`/`end`, `break`/`continue`, `define`/`template`/`block`). Errors that Go only finds
//! when a template runs (a missing field, wrong argument types) are Prometheus' to report too.
//! `tests/alert_templates.rs` holds the same cases against promtool.

/// Functions an alert template may call: Go's built-ins and those of Prometheus 2.42 (the
/// oldest Prometheus the generated rules are tested with; newer ones such as `toDuration` and
/// `now` would break older servers).
pub const FUNCTIONS: &[&str] = &[
    // Go text/template built-ins.
    "and",
    "call",
    "html",
    "index",
    "slice",
    "js",
    "len",
    "not",
    "or",
    "print",
    "printf",
    "println",
    "urlquery",
    "eq",
    "ge",
    "gt",
    "le",
    "lt",
    "ne",
    // Prometheus.
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "args",
    "reReplaceAll",
    "safeHtml",
    "match",
    "title",
    "toUpper",
    "toLower",
    "graphLink",
    "tableLink",
    "sortByLabel",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "toTime",
    "parseDuration",
    "stripPort",
    "stripDomain",
    "pathPrefix",
    "externalURL",
];

/// Variables Prometheus declares before an alert template.
const PREDECLARED: &[&str] = &["$", "$labels", "$externalLabels", "$externalURL", "$value"];

/// A template Prometheus would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template error at column {column}: {message}")]
pub struct TemplateError {
    /// 1-based character column in the template text (lines count as one run of text).
    pub column: usize,
    /// What is wrong, in Go's words where possible.
    pub message: String,
}

/// Checks `text` as Prometheus parses an alert annotation or label template.
pub fn validate(text: &str) -> Result<(), TemplateError> {
    let tokens = lex(text);
    let mut p = Parser { text, tokens, pos: 0, vars: Vec::new(), range_depth: 0, defined: Vec::new() };
    p.vars.extend(PREDECLARED.iter().map(|v| v.to_string()));
    p.parse_top()
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Text,
    LeftDelim,
    RightDelim,
    Space,
    Pipe,
    Assign,
    Declare,
    LeftParen,
    RightParen,
    Str(String),
    RawStr,
    CharConst(String),
    Number(String),
    Complex,
    Dot,
    Field,
    Var(String),
    Ident(String),
    Bool,
    Nil,
    Char(char),
    Kw(Kw),
    Error(String),
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kw {
    Block,
    Break,
    Continue,
    Define,
    Else,
    End,
    If,
    Range,
    Template,
    With,
}

impl Tok {
    /// How Go's parser names a token in "unexpected …" messages.
    fn describe(&self, text: &str) -> String {
        match self {
            Tok::Eof => "EOF".into(),
            Tok::Kw(k) => format!("<{}>", kw_name(*k)),
            Tok::RightDelim => "\"}}\"".into(),
            Tok::LeftDelim => "\"{{\"".into(),
            Tok::Char(c) => format!("{c:?}"),
            Tok::Pipe => "\"|\"".into(),
            Tok::RightParen => "\")\"".into(),
            Tok::LeftParen => "\"(\"".into(),
            Tok::Assign => "\"=\"".into(),
            Tok::Declare => "\":=\"".into(),
            _ => {
                let _ = text;
                format!("{self:?}").to_lowercase()
            }
        }
    }
}

fn kw_name(k: Kw) -> &'static str {
    match k {
        Kw::Block => "block",
        Kw::Break => "break",
        Kw::Continue => "continue",
        Kw::Define => "define",
        Kw::Else => "else",
        Kw::End => "end",
        Kw::If => "if",
        Kw::Range => "range",
        Kw::Template => "template",
        Kw::With => "with",
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

/// Go's lexer: the whole text as `(byte offset, token)`, ending in `Eof` or an `Error`.
fn lex(text: &str) -> Vec<(usize, Tok)> {
    let mut l = Lexer { s: text, pos: 0, out: Vec::new(), paren: 0 };
    l.run();
    l.out
}

struct Lexer<'a> {
    s: &'a str,
    pos: usize,
    out: Vec<(usize, Tok)>,
    paren: i32,
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }
    fn emit(&mut self, at: usize, t: Tok) {
        self.out.push((at, t));
    }
    fn fail(&mut self, at: usize, m: String) {
        self.out.push((at, Tok::Error(m)));
    }
    fn at_right_delim(&self) -> Option<usize> {
        let r = self.rest();
        let mut it = r.chars();
        if let (Some(a), Some('-')) = (it.next(), it.next()) {
            if is_space(a) && r[a.len_utf8() + 1..].starts_with("}}") {
                return Some(a.len_utf8() + 1 + 2);
            }
        }
        r.starts_with("}}").then_some(2)
    }
    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            _ => self.rest().starts_with("}}"),
        }
    }

    fn run(&mut self) {
        loop {
            // Text up to the next action.
            let Some(x) = self.rest().find("{{") else {
                if !self.rest().is_empty() {
                    self.emit(self.pos, Tok::Text);
                }
                self.emit(self.s.len(), Tok::Eof);
                return;
            };
            if x > 0 {
                self.emit(self.pos, Tok::Text);
            }
            let start = self.pos + x;
            self.pos = start + 2;
            let r = self.rest();
            let trim = r.len() >= 2 && r.starts_with('-') && r[1..].starts_with(is_space);
            let after = if trim { 2 } else { 0 };
            if self.rest()[after..].starts_with("/*") {
                self.pos += after + 2;
                let Some(end) = self.rest().find("*/") else {
                    return self.fail(start, "unclosed comment".into());
                };
                self.pos += end + 2;
                let Some(n) = self.at_right_delim() else {
                    return self.fail(start, "comment ends before closing delimiter".into());
                };
                self.pos += n;
                continue;
            }
            self.emit(start, Tok::LeftDelim);
            self.pos += after;
            self.paren = 0;
            if !self.inside_action() {
                return;
            }
        }
    }

    /// Lexes one action up to and including its `}}`; false after an error.
    fn inside_action(&mut self) -> bool {
        loop {
            if let Some(n) = self.at_right_delim() {
                if self.paren == 0 {
                    self.emit(self.pos, Tok::RightDelim);
                    self.pos += n;
                    return true;
                }
                self.fail(self.pos, "unclosed left paren".into());
                return false;
            }
            let at = self.pos;
            let Some(c) = self.bump() else {
                self.fail(at, "unclosed action".into());
                return false;
            };
            let ok = match c {
                c if is_space(c) => {
                    while self.peek().is_some_and(is_space) {
                        self.bump();
                    }
                    // " -}}": leave the last space for the trim marker.
                    let before = self.pos - 1;
                    let tail = &self.s[before..];
                    if tail.len() >= 2 && tail[1..].starts_with("-}}") {
                        self.pos = before;
                        if self.pos == at {
                            continue;
                        }
                    }
                    self.emit(at, Tok::Space);
                    true
                }
                '=' => {
                    self.emit(at, Tok::Assign);
                    true
                }
                ':' => {
                    if self.bump() != Some('=') {
                        self.fail(at, "expected :=".into());
                        false
                    } else {
                        self.emit(at, Tok::Declare);
                        true
                    }
                }
                '|' => {
                    self.emit(at, Tok::Pipe);
                    true
                }
                '"' => self.delimited(at, '"'),
                '`' => match self.rest().find('`') {
                    Some(e) => {
                        self.pos += e + 1;
                        self.emit(at, Tok::RawStr);
                        true
                    }
                    None => {
                        self.fail(at, "unterminated raw quoted string".into());
                        false
                    }
                },
                '$' => self.field_or_var(at, true),
                '\'' => self.delimited(at, '\''),
                '.' if !self.peek().is_some_and(|d| d.is_ascii_digit()) => self.field_or_var(at, false),
                '.' | '+' | '-' | '0'..='9' => {
                    self.pos = at;
                    self.number(at)
                }
                c if is_alnum(c) => {
                    self.pos = at;
                    self.identifier(at)
                }
                '(' => {
                    self.paren += 1;
                    self.emit(at, Tok::LeftParen);
                    true
                }
                ')' => {
                    self.paren -= 1;
                    if self.paren < 0 {
                        self.fail(at, "unexpected right paren".into());
                        false
                    } else {
                        self.emit(at, Tok::RightParen);
                        true
                    }
                }
                c if c.is_ascii() && !c.is_ascii_control() => {
                    self.emit(at, Tok::Char(c));
                    true
                }
                c => {
                    self.fail(at, format!("unrecognized character in action: {c:?}"));
                    false
                }
            };
            if !ok {
                return false;
            }
        }
    }

    /// A `"…"` string or a `'…'` character constant, up to the closing `close` (escapes
    /// skipped); unterminated at a newline or the end.
    fn delimited(&mut self, at: usize, close: char) -> bool {
        loop {
            match self.bump() {
                Some('\\') => match self.bump() {
                    Some('\n') | None => break,
                    Some(_) => {}
                },
                Some('\n') | None => break,
                Some(c) if c == close => {
                    let lit = self.s[at..self.pos].to_string();
                    self.emit(at, if close == '"' { Tok::Str(lit) } else { Tok::CharConst(lit) });
                    return true;
                }
                Some(_) => {}
            }
        }
        let what = if close == '"' { "quoted string" } else { "character constant" };
        self.fail(at, format!("unterminated {what}"));
        false
    }

    fn field_or_var(&mut self, at: usize, var: bool) -> bool {
        if self.at_terminator() {
            self.emit(at, if var { Tok::Var("$".into()) } else { Tok::Dot });
            return true;
        }
        if !self.word(at) {
            return false;
        }
        let word = self.s[at..self.pos].to_string();
        self.emit(at, if var { Tok::Var(word) } else { Tok::Field });
        true
    }

    /// Consumes the rest of an alphanumeric word begun at `at`; fails unless a terminator
    /// (space, delimiter, punctuation) follows it.
    fn word(&mut self, at: usize) -> bool {
        while self.peek().is_some_and(is_alnum) {
            self.bump();
        }
        if !self.at_terminator() {
            let c = self.peek().unwrap_or(' ');
            self.fail(at, format!("bad character {c:?}"));
            return false;
        }
        true
    }

    fn identifier(&mut self, at: usize) -> bool {
        if !self.word(at) {
            return false;
        }
        let word = &self.s[at..self.pos];
        let tok = match word {
            "block" => Tok::Kw(Kw::Block),
            "break" => Tok::Kw(Kw::Break),
            "continue" => Tok::Kw(Kw::Continue),
            "define" => Tok::Kw(Kw::Define),
            "else" => Tok::Kw(Kw::Else),
            "end" => Tok::Kw(Kw::End),
            "if" => Tok::Kw(Kw::If),
            "range" => Tok::Kw(Kw::Range),
            "template" => Tok::Kw(Kw::Template),
            "with" => Tok::Kw(Kw::With),
            "nil" => Tok::Nil,
            "true" | "false" => Tok::Bool,
            w => Tok::Ident(w.to_string()),
        };
        self.emit(at, tok);
        true
    }

    /// Go's `scanNumber`: sign, base prefix, digits, fraction, exponent, `i`.
    fn scan_number(&mut self) -> bool {
        let accept = |l: &mut Self, set: &str| {
            if l.peek().is_some_and(|c| set.contains(c)) {
                l.bump();
                true
            } else {
                false
            }
        };
        let accept_run = |l: &mut Self, set: &str| while accept(l, set) {};
        accept(self, "+-");
        let mut digits = "0123456789_";
        if accept(self, "0") {
            if accept(self, "xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if accept(self, "oO") {
                digits = "01234567_";
            } else if accept(self, "bB") {
                digits = "01_";
            }
        }
        accept_run(self, digits);
        if accept(self, ".") {
            accept_run(self, digits);
        }
        if digits.len() == 11 && accept(self, "eE") {
            accept(self, "+-");
            accept_run(self, "0123456789_");
        }
        if digits.len() == 23 && accept(self, "pP") {
            accept(self, "+-");
            accept_run(self, "0123456789_");
        }
        accept(self, "i");
        if self.peek().is_some_and(is_alnum) {
            self.bump();
            return false;
        }
        true
    }

    fn number(&mut self, at: usize) -> bool {
        if !self.scan_number() {
            let lit = self.s[at..self.pos].to_string();
            self.fail(at, format!("bad number syntax: {lit:?}"));
            return false;
        }
        if matches!(self.peek(), Some('+' | '-')) {
            if !self.scan_number() || !self.s[..self.pos].ends_with('i') {
                let lit = self.s[at..self.pos].to_string();
                self.fail(at, format!("bad number syntax: {lit:?}"));
                return false;
            }
            self.emit(at, Tok::Complex);
            return true;
        }
        let lit = self.s[at..self.pos].to_string();
        self.emit(at, Tok::Number(lit));
        true
    }
}

/// What ended a list of nodes.
#[derive(Debug, PartialEq)]
enum Stop {
    End,
    Else,
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<(usize, Tok)>,
    pos: usize,
    vars: Vec<String>,
    range_depth: usize,
    defined: Vec<String>,
}

type R<T> = Result<T, TemplateError>;

impl Parser<'_> {
    fn err<T>(&self, at: usize, message: impl Into<String>) -> R<T> {
        let column = self.text[..at.min(self.text.len())].chars().count() + 1;
        Err(TemplateError { column, message: message.into() })
    }

    fn next(&mut self) -> R<(usize, Tok)> {
        let t = self.tokens.get(self.pos).cloned().unwrap_or((self.text.len(), Tok::Eof));
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        if let Tok::Error(m) = &t.1 {
            return self.err(t.0, m.clone());
        }
        Ok(t)
    }
    fn backup(&mut self) {
        self.pos -= 1;
    }
    fn peek(&mut self) -> R<Tok> {
        let t = self.next()?;
        self.backup();
        Ok(t.1)
    }
    fn next_non_space(&mut self) -> R<(usize, Tok)> {
        loop {
            let t = self.next()?;
            if t.1 != Tok::Space {
                return Ok(t);
            }
        }
    }
    fn peek_non_space(&mut self) -> R<Tok> {
        let t = self.next_non_space()?;
        self.backup();
        Ok(t.1)
    }
    fn unexpected<T>(&self, t: &(usize, Tok), context: &str) -> R<T> {
        self.err(t.0, format!("unexpected {} in {context}", t.1.describe(self.text)))
    }
    fn expect_right_delim(&mut self, context: &str) -> R<()> {
        let t = self.next_non_space()?;
        if t.1 != Tok::RightDelim {
            return self.unexpected(&t, context);
        }
        Ok(())
    }

    fn parse_top(&mut self) -> R<()> {
        loop {
            match self.peek()? {
                Tok::Eof => return Ok(()),
                Tok::LeftDelim => {
                    let delim = self.pos;
                    self.next()?;
                    if let (_, Tok::Kw(Kw::Define)) = self.next_non_space()? {
                        self.definition()?;
                        continue;
                    }
                    self.pos = delim;
                }
                _ => {}
            }
            if let Some((at, stop)) = self.text_or_action()? {
                let what = if stop == Stop::End { "{{end}}" } else { "{{else}}" };
                return self.err(at, format!("unexpected {what}"));
            }
        }
    }

    fn definition(&mut self) -> R<()> {
        let t = self.next_non_space()?;
        let name = match &t.1 {
            Tok::Str(s) => s.clone(),
            Tok::RawStr => self.text[t.0..].split('`').nth(1).unwrap_or("").to_string(),
            _ => return self.unexpected(&t, "define clause"),
        };
        self.expect_right_delim("define clause")?;
        let saved = (std::mem::replace(&mut self.vars, vec!["$".into()]), self.range_depth);
        self.range_depth = 0;
        let end = self.item_list()?;
        (self.vars, self.range_depth) = saved;
        if end.1 != Stop::End {
            return self.err(end.0, "unexpected {{else}} in define clause");
        }
        if self.defined.contains(&name) {
            return self.err(t.0, format!("template: multiple definition of template {name}"));
        }
        self.defined.push(name);
        Ok(())
    }

    /// Text or one action; `Some` when the action was `{{end}}` or `{{else}}`.
    fn text_or_action(&mut self) -> R<Option<(usize, Stop)>> {
        let t = self.next_non_space()?;
        match t.1 {
            Tok::Text => Ok(None),
            Tok::LeftDelim => self.action(),
            _ => self.unexpected(&t, "input"),
        }
    }

    /// Nodes up to `{{end}}` or `{{else}}`.
    fn item_list(&mut self) -> R<(usize, Stop)> {
        loop {
            if self.peek_non_space()? == Tok::Eof {
                let at = self.text.len();
                return self.err(at, "unexpected EOF");
            }
            if let Some(stop) = self.text_or_action()? {
                return Ok(stop);
            }
        }
    }

    fn action(&mut self) -> R<Option<(usize, Stop)>> {
        let t = self.next_non_space()?;
        match t.1 {
            Tok::Kw(Kw::Block) => self.block().map(|_| None),
            Tok::Kw(k @ (Kw::Break | Kw::Continue)) => {
                self.expect_right_delim(&format!("{{{{{}}}}}", kw_name(k)))?;
                if self.range_depth == 0 {
                    return self.err(t.0, format!("{{{{{}}}}} outside {{{{range}}}}", kw_name(k)));
                }
                Ok(None)
            }
            Tok::Kw(Kw::Else) => {
                // `{{else if …}}` leaves the `if` for the enclosing `if` to take.
                if self.peek_non_space()? != Tok::Kw(Kw::If) {
                    self.expect_right_delim("else")?;
                }
                Ok(Some((t.0, Stop::Else)))
            }
            Tok::Kw(Kw::End) => {
                self.expect_right_delim("end")?;
                Ok(Some((t.0, Stop::End)))
            }
            Tok::Kw(k @ (Kw::If | Kw::Range | Kw::With)) => self.control(k).map(|_| None),
            Tok::Kw(Kw::Template) => {
                self.template_name("template clause")?;
                if self.next_non_space()?.1 != Tok::RightDelim {
                    self.backup();
                    self.pipeline("template clause", Tok::RightDelim)?;
                }
                Ok(None)
            }
            _ => {
                self.backup();
                self.pipeline("command", Tok::RightDelim).map(|_| None)
            }
        }
    }

    fn template_name(&mut self, context: &str) -> R<()> {
        let t = self.next_non_space()?;
        match t.1 {
            Tok::Str(ref s) => unquote(s).map(|_| ()).or_else(|m| self.err(t.0, m)),
            Tok::RawStr => Ok(()),
            _ => self.unexpected(&t, context),
        }
    }

    fn block(&mut self) -> R<()> {
        self.template_name("block clause")?;
        self.pipeline("block clause", Tok::RightDelim)?;
        let saved = (std::mem::replace(&mut self.vars, vec!["$".into()]), self.range_depth);
        self.range_depth = 0;
        let end = self.item_list()?;
        (self.vars, self.range_depth) = saved;
        if end.1 != Stop::End {
            return self.err(end.0, "unexpected {{else}} in block clause");
        }
        Ok(())
    }

    fn control(&mut self, kw: Kw) -> R<()> {
        let mark = self.vars.len();
        let context = kw_name(kw);
        self.pipeline(context, Tok::RightDelim)?;
        if kw == Kw::Range {
            self.range_depth += 1;
        }
        let end = self.item_list()?;
        if kw == Kw::Range {
            self.range_depth -= 1;
        }
        if end.1 == Stop::Else {
            if kw == Kw::If && self.peek()? == Tok::Kw(Kw::If) {
                // {{else if x}} is {{else}}{{if x}}…{{end}}{{end}} with one shared {{end}}.
                self.next()?;
                self.control(Kw::If)?;
            } else {
                let end = self.item_list()?;
                if end.1 != Stop::End {
                    return self.err(end.0, "expected end; found {{else}}");
                }
            }
        }
        self.vars.truncate(mark);
        Ok(())
    }

    fn pipeline(&mut self, context: &str, end: Tok) -> R<()> {
        let mut decls = 0;
        // Declarations: `$x :=`, `$x =`, and `$i, $e :=` in range.
        loop {
            if let Tok::Var(v) = self.peek_non_space()? {
                let var_at = self.pos;
                self.next_non_space()?;
                let adjacent = self.peek()?;
                let after = self.peek_non_space()?;
                match after {
                    Tok::Assign | Tok::Declare => {
                        self.next_non_space()?;
                        self.vars.push(v);
                    }
                    Tok::Char(',') => {
                        self.next_non_space()?;
                        decls += 1;
                        if context == "range" && decls < 2 {
                            if matches!(
                                self.peek_non_space()?,
                                Tok::Var(_) | Tok::RightDelim | Tok::RightParen
                            ) {
                                self.vars.push(v);
                                continue;
                            }
                            let at = self.tokens.get(self.pos).map_or(0, |t| t.0);
                            return self.err(at, "range can only initialize variables");
                        }
                        let at = self.tokens.get(var_at).map_or(0, |t| t.0);
                        return self.err(at, format!("too many declarations in {context}"));
                    }
                    _ => {
                        let _ = adjacent;
                        self.pos = var_at;
                    }
                }
            }
            break;
        }
        let mut cmds: Vec<Tok> = Vec::new();
        loop {
            let t = self.next_non_space()?;
            if t.1 == end {
                if cmds.is_empty() {
                    return self.err(t.0, format!("missing value for {context}"));
                }
                for (i, first) in cmds.iter().enumerate().skip(1) {
                    if matches!(
                        first,
                        Tok::Bool
                            | Tok::Dot
                            | Tok::Nil
                            | Tok::Number(_)
                            | Tok::Str(_)
                            | Tok::RawStr
                            | Tok::CharConst(_)
                            | Tok::Complex
                    ) {
                        return self.err(t.0, format!("non executable command in pipeline stage {}", i + 1));
                    }
                }
                return Ok(());
            }
            match t.1 {
                Tok::Bool
                | Tok::CharConst(_)
                | Tok::Complex
                | Tok::Dot
                | Tok::Field
                | Tok::Ident(_)
                | Tok::Number(_)
                | Tok::Nil
                | Tok::RawStr
                | Tok::Str(_)
                | Tok::Var(_)
                | Tok::LeftParen => {
                    self.backup();
                    cmds.push(self.command()?);
                }
                _ => return self.unexpected(&t, context),
            }
        }
    }

    /// One command of a pipeline; returns the kind of its first operand.
    fn command(&mut self) -> R<Tok> {
        let mut first: Option<Tok> = None;
        loop {
            self.peek_non_space()?;
            if let Some(kind) = self.operand()? {
                first.get_or_insert(kind);
            }
            let t = self.next()?;
            match t.1 {
                Tok::Space => continue,
                Tok::RightDelim | Tok::RightParen => self.backup(),
                Tok::Pipe => {}
                _ => return self.unexpected(&t, "operand"),
            }
            break;
        }
        match first {
            Some(k) => Ok(k),
            None => {
                let at = self.tokens.get(self.pos.saturating_sub(1)).map_or(0, |t| t.0);
                self.err(at, "empty command")
            }
        }
    }

    fn operand(&mut self) -> R<Option<Tok>> {
        let Some((at, kind)) = self.term()? else { return Ok(None) };
        if self.peek()? == Tok::Field {
            while self.peek()? == Tok::Field {
                self.next()?;
            }
            if matches!(
                kind,
                Tok::Bool
                    | Tok::Str(_)
                    | Tok::RawStr
                    | Tok::Number(_)
                    | Tok::CharConst(_)
                    | Tok::Complex
                    | Tok::Nil
                    | Tok::Dot
            ) {
                return self.err(at, "unexpected . after term");
            }
            // A chain on a field or variable is still a field or variable; on a parenthesised
            // pipeline it is a chain (executable).
            return Ok(Some(if matches!(kind, Tok::LeftParen) { Tok::Field } else { kind }));
        }
        Ok(Some(kind))
    }

    fn term(&mut self) -> R<Option<(usize, Tok)>> {
        let t = self.next_non_space()?;
        match &t.1 {
            Tok::Ident(name) => {
                if !FUNCTIONS.contains(&name.as_str()) {
                    return self.err(t.0, format!("function {name:?} not defined"));
                }
            }
            Tok::Var(name) => {
                if !self.vars.iter().any(|v| v == name) {
                    return self.err(t.0, format!("undefined variable {name:?}"));
                }
            }
            Tok::Number(lit) => {
                if !valid_number(lit) {
                    return self.err(t.0, format!("illegal number syntax: {lit:?}"));
                }
            }
            Tok::CharConst(lit) => {
                if unquote_char(lit).is_err() {
                    return self.err(t.0, format!("malformed character constant: {lit}"));
                }
            }
            Tok::Str(lit) => {
                if let Err(m) = unquote(lit) {
                    return self.err(t.0, m);
                }
            }
            Tok::LeftParen => {
                self.pipeline("parenthesized pipeline", Tok::RightParen)?;
            }
            Tok::Dot | Tok::Nil | Tok::Field | Tok::Bool | Tok::Complex | Tok::RawStr => {}
            _ => {
                self.backup();
                return Ok(None);
            }
        }
        Ok(Some(t))
    }
}

/// Checks a double-quoted Go string literal's escapes (strconv.Unquote).
fn unquote(lit: &str) -> Result<(), String> {
    let inner = &lit[1..lit.len() - 1];
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            continue;
        }
        escape(&mut chars, '"').map_err(|_| "invalid syntax".to_string())?;
    }
    Ok(())
}

/// One escape after a backslash, as strconv.UnquoteChar reads it.
fn escape(chars: &mut std::str::Chars, quote: char) -> Result<(), ()> {
    let hex = |chars: &mut std::str::Chars, n: usize| -> Result<u32, ()> {
        let s: String = chars.by_ref().take(n).collect();
        if s.len() != n {
            return Err(());
        }
        u32::from_str_radix(&s, 16).map_err(|_| ())
    };
    match chars.next().ok_or(())? {
        'a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\\' => Ok(()),
        c if c == quote => Ok(()),
        'x' => hex(chars, 2).map(|_| ()),
        'u' => hex(chars, 4).and_then(|v| char::from_u32(v).map(|_| ()).ok_or(())),
        'U' => hex(chars, 8).and_then(|v| char::from_u32(v).map(|_| ()).ok_or(())),
        d @ '0'..='7' => {
            let rest: String = chars.by_ref().take(2).collect();
            let all = format!("{d}{rest}");
            if all.len() != 3 || !all.chars().all(|c| ('0'..='7').contains(&c)) {
                return Err(());
            }
            (u32::from_str_radix(&all, 8).map_err(|_| ())? <= 255).then_some(()).ok_or(())
        }
        _ => Err(()),
    }
}

/// A character constant must hold exactly one (possibly escaped) character.
fn unquote_char(lit: &str) -> Result<(), ()> {
    let inner = &lit[1..lit.len() - 1];
    let mut chars = inner.chars();
    match chars.next().ok_or(())? {
        '\\' => escape(&mut chars, '\'')?,
        '\'' => return Err(()),
        _ => {}
    }
    if chars.next().is_some() {
        return Err(());
    }
    Ok(())
}

/// Whether Go's parser accepts a number literal the lexer let through: as text/template does,
/// an integer (base prefix or leading-zero octal, in 64-bit range), else a float, and a float
/// without `.`, `e` or `p` is an integer out of range ("integer overflow").
fn valid_number(lit: &str) -> bool {
    let (negative, body) = match lit.as_bytes().first() {
        Some(b'-') => (true, &lit[1..]),
        Some(b'+') => (false, &lit[1..]),
        _ => (false, lit),
    };
    if let Some(imaginary) = body.strip_suffix('i') {
        if go_float(imaginary) {
            return true;
        }
    }
    if go_int(body, negative) {
        return true;
    }
    go_float(body) && body.contains(['.', 'e', 'E', 'p', 'P'])
}

/// Go's rule for `_` in number literals: only between digits, or after a base prefix.
fn underscores_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// strconv.ParseInt/ParseUint with base 0.
fn go_int(s: &str, negative: bool) -> bool {
    if !underscores_ok(s) {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    let digits = digits.replace('_', "");
    if digits.is_empty() {
        return false;
    }
    match u128::from_str_radix(&digits, radix) {
        Ok(v) if negative => v <= 1u128 << 63,
        Ok(v) => v <= u128::from(u64::MAX),
        Err(_) => false,
    }
}

/// strconv.ParseFloat: decimal with optional fraction and exponent, or hex with a `p` exponent.
fn go_float(s: &str) -> bool {
    if s.is_empty() || !underscores_ok(s) {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    let digits_only = |d: &str, hex: bool| {
        d.chars().all(|c| c == '_' || c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()))
    };
    let has_digit =
        |d: &str, hex: bool| d.chars().any(|c| c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()));
    let exponent_ok = |e: &str| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        has_digit(e, false) && digits_only(e, false)
    };
    let (hex, body) = match lower.strip_prefix("0x") {
        Some(b) => (true, b),
        None => (false, lower.as_str()),
    };
    let (mantissa, exponent) = match body.split_once(if hex { 'p' } else { 'e' }) {
        Some((m, e)) => (m, Some(e)),
        None if hex => return false,
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    digits_only(int, hex)
        && digits_only(frac, hex)
        && (has_digit(int, hex) || has_digit(frac, hex))
        && exponent.is_none_or(exponent_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_style_templates_pass() {
        for ok in [
            "Redis {{ $labels.target }} is unreachable",
            "{{ $value | humanizePercentage }} used",
            "{{- if gt $value 1.0 -}}big{{ else if eq $value 0.0 }}zero{{ else }}small{{ end -}}",
            "{{ range $i, $e := query \"up\" }}{{ $i }}{{ $e.Labels.job }}{{ break }}{{ end }}",
            "{{ with $x := $labels.queue }}{{ $x | toUpper }}{{ end }}",
            "{{/* a comment */}}plain {{ printf \"%.2f\" $value }}",
            "{{ define \"t\" }}x{{ end }}{{ template \"t\" . }}",
            "{{ (index $labels \"queue\") }} {{ -1.5e3 }} {{ 0x1F }} {{ 'a' }} {{ `raw` }}",
            "no actions at all }} {",
        ] {
            validate(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn broken_templates_fail_with_a_reason() {
        for (bad, want) in [
            ("backlog {{ .Foo ", "unclosed action"),
            ("{{ \"unterminated }}", "unterminated quoted string"),
            ("{{ 'x }}", "unterminated character constant"),
            ("{{ $labels.x", "unclosed action"),
            ("{{ bogus }}", "function \"bogus\" not defined"),
            ("{{ $nope }}", "undefined variable \"$nope\""),
            ("{{ if true }}x", "unexpected EOF"),
            ("x{{ end }}", "unexpected {{end}}"),
            ("{{ }}", "missing value for command"),
            ("{{ | humanize }}", "unexpected \"|\" in command"),
            ("{{ $value | 3 }}", "non executable command"),
            ("{{ break }}", "outside {{range}}"),
            ("{{/* open }}", "unclosed comment"),
            ("{{ \"\\q\" }}", "invalid syntax"),
            ("{{ (humanize $value }}", "unclosed left paren"),
            ("{{ 1a }}", "bad number syntax"),
        ] {
            let e = validate(bad).expect_err(bad);
            assert!(e.message.contains(want), "{bad}: {e}");
        }
    }
}
