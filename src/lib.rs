//! sk8: a control plane for running Apache Spark on Kubernetes.
//!
//! See `README.md` for what it does and `CLAUDE.md` for how the code is laid out.

pub mod domain;
pub mod error;
pub mod store;
pub mod backend;
pub mod config;
pub mod reconciler;
pub mod service;
pub mod api;
