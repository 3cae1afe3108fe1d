//! An in-memory Kubernetes API server over HTTPS for integration tests: EKS-style bearer-token
//! authentication in front of kube-fake-client, so real kube clients talk to it as to EKS.
#![forbid(unsafe_code)]

mod api;
mod auth;
mod discovery;
pub mod eks_token;
mod fields;
mod lists;
mod resource;
mod server;
mod status;
mod store;
mod sts;
mod tls;

pub use server::{Config, Server};
