//! Integration tests: a real simulator on a loopback port, driven by a hyper client over
//! HTTP/1.1 and h2c, checking status codes, headers, exact bodies and event-stream frames.

mod auth;
mod batch;
mod common;
mod control;
mod converse;
mod faults;
mod invoke;
mod stream;
