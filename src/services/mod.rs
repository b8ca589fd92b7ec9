//! The app's services: one per resource. A service decides who may do what, checks what the
//! request asks for and calls the store (and identity or limits); it answers with typed values
//! or a [`GatewayError`](crate::error::GatewayError). Handlers in `api/` only parse the request,
//! call a service and render its answer in the shape a seed's frontend expects, so each rule
//! lives in one place whoever calls it: a REST handler, or code inside the gateway.
//!
//! A service borrows the [`AppState`](crate::state::AppState) for one call:
//! `Keys::new(&state).revoke(&caller, None, &id)`.

pub mod access;
pub mod chat;
pub mod keys;
pub mod limit_overrides;
pub mod prompts;
pub mod threads;
pub mod usage;
pub mod users;

pub use chat::Chat;
pub use keys::Keys;
pub use limit_overrides::LimitOverrides;
pub use prompts::Prompts;
pub use threads::Threads;
pub use usage::Usage;
pub use users::Users;
