//! Adapters: the ports implemented over the real services. Only this module imports the AWS
//! SDK; it hands the core domain types and `PortError`s.

pub mod aws;
pub mod kube;
