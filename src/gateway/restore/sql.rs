//! The few SQL statements that change a Spark session's state in a way a restore can repeat:
//! temp views and temporary functions made or dropped, and confs set or reset. Everything else
//! (queries, DDL on tables, which lives in the catalog and survives the server) changes nothing
//! the gateway keeps.
//!
//! This is a recogniser of statement heads, not a SQL parser: it reads the leading keywords and
//! the object's name, which is all that decides what a statement does to the session.

/// What a statement does to the session's state.
#[derive(Debug, PartialEq, Eq)]
pub enum Statement {
    CreateView(String),
    DropView(String),
    CreateFunction(String),
    DropFunction(String),
    /// `SET key=value`: the key (the value is the server's to read: Spark takes the text as
    /// it is, Sail a literal, so the statement itself is what a restore repeats).
    Set(String),
    /// `RESET key`, or with `None` plain `RESET` (every conf back to its default).
    Reset(Option<String>),
}

/// Where a global temp view lives (`spark.sql.globalTempDatabase`, at its default).
pub const GLOBAL_TEMP: &str = "global_temp";

/// What `sql` does to the session's state, if anything a restore repeats.
pub fn statement(sql: &str) -> Option<Statement> {
    let mut words = Words::new(sql);
    if words.keyword("CREATE") {
        return create(words);
    }
    if words.keyword("DROP") {
        return drop(words);
    }
    if words.keyword("SET") {
        return set(words.rest);
    }
    if words.keyword("RESET") {
        let key = words.rest.trim();
        return Some(Statement::Reset((!key.is_empty()).then(|| key.to_owned())));
    }
    None
}

/// `CREATE [OR REPLACE] [GLOBAL] TEMP[ORARY] VIEW [IF NOT EXISTS] name` and
/// `CREATE [OR REPLACE] TEMPORARY FUNCTION [IF NOT EXISTS] name`.
fn create(mut words: Words<'_>) -> Option<Statement> {
    if words.keyword("OR") && !words.keyword("REPLACE") {
        return None;
    }
    let global = words.keyword("GLOBAL");
    if !(words.keyword("TEMPORARY") || words.keyword("TEMP")) {
        return None;
    }
    if words.keyword("VIEW") {
        words.if_exists(true);
        let name = words.name()?;
        return Some(Statement::CreateView(if global && !name.contains('.') {
            format!("{GLOBAL_TEMP}.{name}")
        } else {
            name
        }));
    }
    if !global && words.keyword("FUNCTION") {
        words.if_exists(true);
        return words.name().map(Statement::CreateFunction);
    }
    None
}

/// `DROP VIEW [IF EXISTS] name` (a temp view of that name is the one dropped) and
/// `DROP TEMPORARY FUNCTION [IF EXISTS] name`.
fn drop(mut words: Words<'_>) -> Option<Statement> {
    if words.keyword("VIEW") {
        words.if_exists(false);
        return words.name().map(Statement::DropView);
    }
    if words.keyword("TEMPORARY") && words.keyword("FUNCTION") {
        words.if_exists(false);
        return words.name().map(Statement::DropFunction);
    }
    None
}

/// `SET key=value`; `SET`, `SET -v` and `SET key` only read.
fn set(rest: &str) -> Option<Statement> {
    let (key, _) = rest.split_once('=')?;
    let key = key.trim();
    let plain = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    if key.is_empty() || key.starts_with('-') || !key.chars().all(plain) {
        return None;
    }
    Some(Statement::Set(key.to_owned()))
}

/// A cursor over a statement's leading words.
struct Words<'a> {
    rest: &'a str,
}

impl<'a> Words<'a> {
    fn new(sql: &'a str) -> Self {
        let mut words = Words { rest: sql };
        words.skip_space();
        words
    }

    /// Skips white space and comments (`-- …` to the end of the line, `/* … */`).
    fn skip_space(&mut self) {
        loop {
            self.rest = self.rest.trim_start();
            if let Some(comment) = self.rest.strip_prefix("--") {
                self.rest = comment.split_once('\n').map_or("", |(_, after)| after);
            } else if let Some(comment) = self.rest.strip_prefix("/*") {
                self.rest = comment.split_once("*/").map_or("", |(_, after)| after);
            } else {
                return;
            }
        }
    }

    /// Takes `keyword` (any case) when it is the next whole word.
    fn keyword(&mut self, keyword: &str) -> bool {
        let Some(head) = self.rest.get(..keyword.len()) else {
            return false;
        };
        let ends = self.rest[keyword.len()..]
            .chars()
            .next()
            .is_none_or(|c| !is_word(c));
        if !head.eq_ignore_ascii_case(keyword) || !ends {
            return false;
        }
        self.rest = &self.rest[keyword.len()..];
        self.skip_space();
        true
    }

    /// Takes `IF [NOT] EXISTS` when it is next.
    fn if_exists(&mut self, not: bool) {
        let mut ahead = Words { rest: self.rest };
        if ahead.keyword("IF") && (!not || ahead.keyword("NOT")) && ahead.keyword("EXISTS") {
            self.rest = ahead.rest;
        }
    }

    /// A possibly qualified name, each part plain or in backticks, as Spark compares it
    /// (without case).
    fn name(&mut self) -> Option<String> {
        let mut parts = Vec::new();
        loop {
            parts.push(self.part()?);
            match self.rest.strip_prefix('.') {
                Some(after) => self.rest = after,
                None => break,
            }
        }
        Some(parts.join(".").to_lowercase())
    }

    fn part(&mut self) -> Option<String> {
        if let Some(quoted) = self.rest.strip_prefix('`') {
            // A doubled backtick is one backtick of the name.
            let mut part = String::new();
            let mut chars = quoted.char_indices().peekable();
            while let Some((at, c)) = chars.next() {
                if c != '`' {
                    part.push(c);
                } else if chars.peek().is_some_and(|&(_, next)| next == '`') {
                    part.push('`');
                    chars.next();
                } else {
                    self.rest = &quoted[at + 1..];
                    return (!part.is_empty()).then_some(part);
                }
            }
            return None;
        }
        let end = self
            .rest
            .find(|c: char| !is_word(c))
            .unwrap_or(self.rest.len());
        let (part, rest) = self.rest.split_at(end);
        self.rest = rest;
        (!part.is_empty()).then(|| part.to_owned())
    }
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests {
    use super::Statement::*;
    use super::*;

    fn view(name: &str) -> Option<Statement> {
        Some(CreateView(name.into()))
    }

    #[test]
    fn temp_views_are_recognised_in_every_spelling() {
        assert_eq!(statement("CREATE TEMP VIEW v AS SELECT 1"), view("v"));
        assert_eq!(
            statement("  create or replace temporary view Sales(a) as select 1"),
            view("sales")
        );
        assert_eq!(
            statement(
                "-- the first cell\n/* a view */ CREATE TEMPORARY VIEW IF NOT EXISTS `my view` AS SELECT 1"
            ),
            view("my view")
        );
        assert_eq!(
            statement("CREATE GLOBAL TEMP VIEW g AS SELECT 1"),
            view("global_temp.g")
        );
        assert_eq!(
            statement("CREATE TEMP VIEW `a``b`.c AS SELECT 1"),
            view("a`b.c")
        );
    }

    #[test]
    fn what_lives_in_the_catalog_or_only_reads_is_not_a_change() {
        for sql in [
            "CREATE VIEW persisted AS SELECT 1",
            "CREATE TABLE t (a INT)",
            "CREATE OR VIEW v AS SELECT 1",
            "CREATE TEMPORARY TABLE t USING parquet",
            "CREATE GLOBAL TEMPORARY FUNCTION f AS 'x'",
            "SELECT * FROM temp_view",
            "CREATED TEMP VIEW v",
            "DROP TABLE t",
            "DROP FUNCTION f",
            "SET",
            "SET -v",
            "SET spark.sql.shuffle.partitions",
            "SET `weird key`=1",
            "settle",
            "",
        ] {
            assert_eq!(statement(sql), None, "{sql}");
        }
    }

    #[test]
    fn drops_functions_and_confs_are_recognised() {
        assert_eq!(
            statement("DROP VIEW IF EXISTS global_temp.G"),
            Some(DropView("global_temp.g".into()))
        );
        assert_eq!(
            statement("create temporary function Plus1(x INT) RETURNS INT RETURN x + 1"),
            Some(CreateFunction("plus1".into()))
        );
        assert_eq!(
            statement("CREATE OR REPLACE TEMPORARY FUNCTION f AS 'com.example.F'"),
            Some(CreateFunction("f".into()))
        );
        assert_eq!(
            statement("DROP TEMPORARY FUNCTION IF EXISTS f"),
            Some(DropFunction("f".into()))
        );
        assert_eq!(
            statement("SET spark.sql.shuffle.partitions = 4"),
            Some(Set("spark.sql.shuffle.partitions".into()))
        );
        assert_eq!(
            statement("reset spark.sql.shuffle.partitions"),
            Some(Reset(Some("spark.sql.shuffle.partitions".into())))
        );
        assert_eq!(statement("RESET"), Some(Reset(None)));
    }
}
