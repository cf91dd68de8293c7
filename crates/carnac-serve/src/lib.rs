//! # carnac-serve
//!
//! The HTTP function host behind `carnac serve`: each request is handled by a
//! fresh, isolated instance of the route's module, compiled once per deploy.
//! Handlers follow the CGI contract of WAGI (see [`cgi`]), so any WASI program
//! in any language is a handler. Limits per route (time, memory, fuel, body and
//! response size, concurrency) turn misbehaving guests into 504/500/413/503
//! responses while every other request is served normally.

pub mod cgi;
pub mod config;
pub mod log;
mod metrics;
mod server;

pub use config::{Limits, RouteConfig, ServeConfig};
pub use server::{serve_until_signal, start, start_with, Overrides, Running, Source, DEFAULT_LISTEN};
