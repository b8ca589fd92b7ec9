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

/// The user a path's `{user_id}` names (seed 002 puts it in every path): the caller's own id,
/// username or email, or, for an admin, anyone's. Anything else is a 404.
pub async fn path_user(
    state: &crate::state::AppState,
    principal: &Principal,
    named: &str,
) -> Result<String, GatewayError> {
    if principal.user_id() == Some(named) {
        return Ok(named.to_string());
    }
    let store = &state.store;
    let user = match store.user_by_id(named).await? {
        Some(user) => Some(user),
        None => store.user_for_login(named).await?.map(|(user, _)| user),
    };
    match user {
        Some(user) if principal.user_id() == Some(user.id.as_str()) || principal.is_admin() => {
            Ok(user.id)
        }
        _ => Err(GatewayError::resource_not_found()),
    }
}
