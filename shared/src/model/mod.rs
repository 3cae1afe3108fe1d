//! The domain's data: identifiers, the desired state read from intents, the observed state
//! read from AWS and Kubernetes, and the settings that steer a reconcile.

mod addons;
mod desired;
mod ids;
mod observed;
mod settings;

pub use addons::*;
pub use desired::*;
pub use ids::*;
pub use observed::*;
pub use settings::*;
