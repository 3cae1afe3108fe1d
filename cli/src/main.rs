//! `eks-intents`: validate intent bundles and plan a cluster's IAM roles and bindings, locally,
//! with the same core the Lambda functions run.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    eks_intents_cli::main_with(std::env::args_os())
}
