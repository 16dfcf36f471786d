//! sk8: a control plane for running Apache Spark on Kubernetes.
//!
//! See `README.md` for what it does and `CLAUDE.md` for how the code is laid out.

pub mod advice;
pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod backend;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod gateway;
pub mod grpc;
pub mod history;
pub mod lease;
pub mod limits;
pub mod reconciler;
pub mod record;
pub mod remediation;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod wake;
