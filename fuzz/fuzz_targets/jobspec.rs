//! The manifest parsers (JobSpec and SessionSpec, JSON and YAML) on arbitrary bytes: they never
//! panic, and every rejection is a client error naming what is wrong.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sk8::domain::jobspec::Format;
use sk8::domain::{JobSpec, SessionSpec, SpecDefaults};
use sk8::error::Error;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let format = if selector & 1 == 0 {
        Format::Json
    } else {
        Format::Yaml
    };
    let defaults = SpecDefaults {
        spark_version: "4.0.1".into(),
        image: "apache/spark:4.0.1".into(),
    };
    let errors = [
        JobSpec::parse(body, format, &defaults).err(),
        SessionSpec::parse(body, format, &defaults).err(),
    ];
    for error in errors.into_iter().flatten() {
        assert!(
            matches!(
                error,
                Error::InvalidRequest { .. } | Error::InvalidFields(_) | Error::PayloadTooLarge(_)
            ),
            "a parser error that is not a client error: {error:?}"
        );
        assert!(!error.to_string().is_empty());
    }
});
