//! Every rule a request breaks, not only the first: validation records each violation with its
//! field, and the request is refused with all of them at once, so that a user fixes a manifest
//! in one round instead of one error per submit.
//!
//! Also the "did you mean" of a misspelt field: the closest known name, when it is close.

use std::fmt;

use crate::error::{Error, FieldError};

/// The violations found so far.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldError>);

impl Violations {
    /// Records a broken rule.
    pub fn push(&mut self, field: impl Into<String>, message: impl fmt::Display) {
        self.0.push(FieldError {
            field: Some(field.into()),
            message: message.to_string(),
        });
    }

    /// Records what a rule check returned, if it failed.
    pub fn check(&mut self, result: Result<(), Error>) {
        if let Err(err) = result {
            self.push_error(err);
        }
    }

    /// Records an error: each of its field errors, or (for another kind of error, which a
    /// rule check does not return) its message.
    pub fn push_error(&mut self, err: Error) {
        let errors = err.field_errors();
        if errors.is_empty() {
            self.0.push(FieldError {
                field: None,
                message: err.to_string(),
            });
        } else {
            self.0.extend(errors);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when nothing was broken; otherwise the error carrying every violation.
    pub fn finish(mut self) -> Result<(), Error> {
        match self.0.len() {
            0 => Ok(()),
            1 => {
                let FieldError { field, message } = self.0.remove(0);
                Err(Error::InvalidRequest { field, message })
            }
            _ => Err(Error::InvalidFields(self.0)),
        }
    }

    /// The value when nothing was broken; otherwise the error carrying every violation.
    /// `value` is `None` only when decoding failed, which recorded a violation.
    pub fn into_result<T>(self, value: Option<T>) -> Result<T, Error> {
        self.finish()?;
        value.ok_or_else(|| Error::InvalidRequest {
            field: None,
            message: "the body could not be decoded".into(),
        })
    }
}

/// The known name closest to `given`, when it is close enough to be what was meant: case,
/// `_` and `-` are ignored (so `main_application_file` finds `mainApplicationFile`), and at
/// most a third of the name may differ (a swap of two letters counts once).
pub fn did_you_mean<'a>(given: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let normal = |name: &str| -> String {
        name.chars()
            .filter(|c| !matches!(c, '_' | '-'))
            .flat_map(char::to_lowercase)
            .collect()
    };
    let given = normal(given);
    known
        .into_iter()
        .map(|name| (strsim::damerau_levenshtein(&given, &normal(name)), name))
        .filter(|(distance, name)| *distance <= (name.len() / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_suggested_and_far_ones_are_not() {
        let known = ["team", "env", "executor", "mainApplicationFile", "memory"];
        assert_eq!(did_you_mean("executer", known), Some("executor"));
        assert_eq!(did_you_mean("memroy", known), Some("memory"));
        assert_eq!(
            did_you_mean("main_application_file", known),
            Some("mainApplicationFile")
        );
        assert_eq!(did_you_mean("Team", known), Some("team"));
        assert_eq!(did_you_mean("priority", known), None);
    }

    #[test]
    fn one_violation_is_an_invalid_request_and_several_are_invalid_fields() {
        let mut one = Violations::default();
        one.push("name", "is bad");
        assert!(matches!(one.finish(), Err(Error::InvalidRequest { .. })));
        let mut two = Violations::default();
        two.push("name", "is bad");
        two.check(Err(Error::invalid("env", "is worse")));
        let err = two.finish().unwrap_err();
        assert_eq!(err.field(), Some("name"));
        assert_eq!(err.field_errors().len(), 2);
        assert_eq!(err.to_string(), "is bad (and 1 more error, see `errors`)");
        assert!(Violations::default().finish().is_ok());
    }
}
