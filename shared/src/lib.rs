//! eks-intents: from Otterize-style ClientIntents to IAM roles bound to EKS ServiceAccounts.
//!
//! The modules `intent`, `model`, `policy`, `plan`, `status` and `words` form the pure core:
//! synchronous, no I/O.

#![forbid(unsafe_code)]

pub mod intent;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod policy;
pub mod ports;
pub mod process;
pub mod status;
pub mod words;

#[cfg(feature = "aws")]
pub mod adapters;
#[cfg(feature = "aws")]
pub mod apply;
#[cfg(feature = "aws")]
pub mod config;
#[cfg(feature = "aws")]
pub mod desired;
#[cfg(feature = "lambda")]
pub mod lambda;
#[cfg(feature = "aws")]
pub mod observe;
#[cfg(feature = "aws")]
pub mod quotas;
#[cfg(feature = "aws")]
pub mod reconcile;
#[cfg(feature = "aws")]
pub mod targets;
#[cfg(feature = "aws")]
pub mod telemetry;

#[cfg(any(test, feature = "test-util"))]
pub mod testing;
