//! The HTTP side: the listeners ([`server`]), the public gateway that routes
//! requests to functions and maps every outcome to a status ([`gateway`]),
//! one access-log line per request ([`access`]), and the admin API
//! ([`admin`]).

pub mod access;
pub mod admin;
pub mod gateway;
pub mod respond;
pub mod server;
