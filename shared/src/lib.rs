//! eks-intents: from Otterize-style ClientIntents to IAM roles bound to EKS ServiceAccounts.
//!
//! The modules `intent`, `model`, `policy` and `plan` form the pure core: synchronous, no I/O.

#![forbid(unsafe_code)]

pub mod intent;
pub mod model;
pub mod plan;
pub mod policy;

#[cfg(any(test, feature = "test-util"))]
pub mod testing;
