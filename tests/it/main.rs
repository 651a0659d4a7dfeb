//! End-to-end tests: the real server on a loopback port, the real sled store in a temporary
//! directory, the generated tonic clients. One test binary, so the suite links once.

// A test: a failed unwrap is a failure with its message, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod accounts;
mod append;
mod append_stream;
mod architecture;
mod as_of;
mod audit;
mod browser;
mod concurrency;
mod console;
mod demo;
mod faults;
mod fixtures;
mod portfolio;
mod practice;
mod privacy;
mod projections;
mod read;
mod rebuild;
mod restart;
mod services;
mod shared_log;
mod subscribe;
mod support;
mod validation;
