//! The HTTP side: the listeners ([`server`]), the public gateway that routes
//! requests to functions and maps every outcome to a status ([`gateway`]),
//! one access-log line per request ([`access`]), the admin API ([`admin`])
//! and the dashboard page it serves ([`dashboard`]).

pub mod access;
pub mod admin;
pub mod dashboard;
pub mod gateway;
pub mod respond;
pub mod server;
