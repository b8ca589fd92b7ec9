//! Who may act on whose resources, the same rule for every resource: a user acts on their own;
//! an admin (or the master key) may name another user. Everyone else gets a 404 for another
//! user's ids, never a 403: ids are not to be probed.

use crate::context::Principal;
use crate::error::GatewayError;

/// The user a request acts for: the caller's own id, or the `requested` one when it is the
/// caller's or the caller is an admin. `no_own_account` words the refusal when the caller has
/// no account (the master key) and named nobody.
pub fn acting_for(
    principal: &Principal,
    requested: Option<&str>,
    no_own_account: &'static str,
) -> Result<String, GatewayError> {
    let own = principal.user_id();
    match requested {
        Some(other) if Some(other) == own || principal.is_admin() => Ok(other.to_string()),
        Some(_) => Err(GatewayError::resource_not_found()),
        None => own
            .map(str::to_string)
            .ok_or_else(|| GatewayError::invalid(Some("user_id"), no_own_account)),
    }
}

/// May `principal` see what `owner_id` owns (in a thread that may be deleted)? Admins see
/// everything; anyone else only their own and nothing deleted.
pub fn ensure_visible(
    principal: &Principal,
    owner_id: &str,
    deleted: bool,
) -> Result<(), GatewayError> {
    if principal.is_admin() || (principal.user_id() == Some(owner_id) && !deleted) {
        Ok(())
    } else {
        Err(GatewayError::resource_not_found())
    }
}
