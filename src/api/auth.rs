//! The auth endpoints of every seed, each implemented once (mounted in `api::router`).

use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use serde::{Deserialize, Deserializer};
use serde_json::json;

use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, UserCaller};
use crate::error::GatewayError;
use crate::identity::accounts::{ClientInfo, PublicUser, Registration};
use crate::identity::oidc::SignInProvider;
use crate::identity::AuthError;
use crate::state::AppState;
use crate::store::users::ProfileUpdate;

type Shared = State<Arc<AppState>>;

/// Seed 001 sends `full_name`, 004 `display_name`, better-auth `name`; 002 adds a username.
#[derive(Deserialize)]
pub struct RegisterBody {
    email: String,
    password: String,
    username: Option<String>,
    #[serde(alias = "full_name", alias = "display_name")]
    name: Option<String>,
}

pub async fn register(
    State(state): Shared,
    client: ClientInfo,
    JsonBody(body): JsonBody<RegisterBody>,
) -> ApiResult<Response> {
    let pair = state
        .identity
        .register(
            Registration {
                email: body.email,
                password: body.password,
                username: body.username,
                name: body.name,
            },
            &client,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(pair)).into_response())
}

/// Seed 002 logs in with `username`, the others with `email`; either field may hold either.
#[derive(Deserialize)]
pub struct LoginBody {
    email: Option<String>,
    username: Option<String>,
    password: String,
}

pub async fn login(
    State(state): Shared,
    client: ClientInfo,
    JsonBody(body): JsonBody<LoginBody>,
) -> ApiResult<Response> {
    let login = body
        .email
        .or(body.username)
        .ok_or(GatewayError::invalid_field(
            "email",
            "email or username is required",
        ))?;
    let pair = state.identity.login(&login, body.password, &client).await?;
    Ok(Json(pair).into_response())
}

/// OAuth2's password grant as a form (`username`, `password`), for Swagger UI and the like.
#[derive(Deserialize)]
pub struct TokenForm {
    username: String,
    password: String,
    grant_type: Option<String>,
}

pub async fn token(
    State(state): Shared,
    client: ClientInfo,
    form: Result<Form<TokenForm>, FormRejection>,
) -> ApiResult<Response> {
    let Form(form) = form.map_err(|e| {
        ApiError::invalid(
            None,
            format!("Expected a form with username and password: {e}"),
        )
    })?;
    if form.grant_type.as_deref().is_some_and(|g| g != "password") {
        return Err(ApiError::invalid(
            Some("grant_type"),
            "only the password grant is supported",
        ));
    }
    let pair = state
        .identity
        .login(&form.username, form.password, &client)
        .await?;
    Ok(Json(pair).into_response())
}

#[derive(Deserialize)]
pub struct RefreshBody {
    refresh_token: String,
}

pub async fn refresh(
    State(state): Shared,
    JsonBody(body): JsonBody<RefreshBody>,
) -> ApiResult<Response> {
    Ok(Json(state.identity.refresh(&body.refresh_token).await?).into_response())
}

#[derive(Deserialize, Default)]
pub struct LogoutBody {
    refresh_token: Option<String>,
}

/// Ends the session of the access token sent, or of the refresh token in the body.
pub async fn logout(State(state): Shared, request: axum::extract::Request) -> ApiResult<Response> {
    // A bad or missing credential may still come with a refresh token in the body; a database
    // failure is a 500, not "not signed in".
    let principal = match state
        .identity
        .authenticate_request(request.method(), request.headers())
        .await
    {
        Ok(principal) => Some(principal),
        Err(AuthError::Internal(e)) => return Err(AuthError::Internal(e).into()),
        Err(_) => None,
    };
    let bytes = super::extract::read_body(request, &state).await?;
    let body: LogoutBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        LogoutBody::default()
    } else {
        super::extract::parse_json(&bytes)?
    };
    match (&principal, &body.refresh_token) {
        (None, None) => return Err(AuthError::Unauthenticated.into()),
        (Some(p), None) if p.session_id.is_none() => {
            return Err(GatewayError::invalid_field(
                "refresh_token",
                "this credential has no session to end",
            )
            .into())
        }
        _ => {}
    }
    state
        .identity
        .logout(principal.as_ref(), body.refresh_token.as_deref())
        .await?;
    Ok(Json(json!({ "detail": "Signed out." })).into_response())
}

pub async fn me(State(state): Shared, caller: UserCaller) -> ApiResult<Json<PublicUser>> {
    let user = state
        .identity
        .store
        .user_by_id(&caller.user_id)
        .await?
        .ok_or(AuthError::InvalidToken)?;
    Ok(Json(user.into()))
}

/// Present and null clears a field; absent leaves it.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
pub struct ProfileBody {
    #[serde(alias = "full_name", alias = "display_name")]
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    username: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    image: Option<Option<String>>,
}

/// PUT and PATCH: only the fields sent change.
pub async fn update_me(
    State(state): Shared,
    caller: UserCaller,
    JsonBody(body): JsonBody<ProfileBody>,
) -> ApiResult<Json<PublicUser>> {
    let update = ProfileUpdate {
        name: body.name.as_deref(),
        username: body.username.as_ref().map(|u| u.as_deref()),
        image: body.image.as_ref().map(|i| i.as_deref()),
    };
    let user = state
        .identity
        .update_profile(&caller.user_id, update)
        .await?;
    Ok(Json(user.into()))
}

#[derive(Deserialize)]
pub struct ChangePasswordBody {
    #[serde(alias = "old_password", alias = "currentPassword")]
    current_password: String,
    #[serde(alias = "newPassword")]
    new_password: String,
}

pub async fn change_password(
    State(state): Shared,
    caller: UserCaller,
    JsonBody(body): JsonBody<ChangePasswordBody>,
) -> ApiResult<Json<serde_json::Value>> {
    state
        .identity
        .change_password(&caller.principal, body.current_password, body.new_password)
        .await?;
    Ok(Json(
        json!({ "detail": "Password changed. Other sessions were signed out." }),
    ))
}

/// Both steps, at `reset-password` and `reset-password/confirm` alike: `{email}` asks for a
/// mail, `{token, new_password}` sets the password.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum ResetBody {
    Confirm {
        token: String,
        #[serde(alias = "password")]
        new_password: String,
    },
    Request {
        email: String,
    },
}

pub async fn reset_password(
    State(state): Shared,
    client: ClientInfo,
    JsonBody(body): JsonBody<ResetBody>,
) -> ApiResult<Response> {
    match body {
        ResetBody::Request { email } => {
            state
                .identity
                .request_password_reset(&email, &client)
                .await?;
            // The same answer whether or not the account exists.
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "detail": "If an account exists for this email, a reset link has been sent." })),
            )
                .into_response())
        }
        ResetBody::Confirm {
            token,
            new_password,
        } => {
            state.identity.reset_password(&token, new_password).await?;
            Ok(
                Json(json!({ "detail": "Password reset. Sign in with the new password." }))
                    .into_response(),
            )
        }
    }
}

#[derive(Deserialize)]
pub struct VerifyBody {
    token: String,
}

/// `POST .../verify-email` `{token}`, or `GET .../verify-email?token=` (the mailed link):
/// marks the address verified and answers the user.
pub async fn verify_email(
    State(state): Shared,
    JsonBody(body): JsonBody<VerifyBody>,
) -> ApiResult<Json<serde_json::Value>> {
    let user = state.identity.verify_email(&body.token).await?;
    Ok(Json(
        json!({ "detail": "Email verified.", "user": PublicUser::from(user) }),
    ))
}

pub async fn verify_email_link(
    State(state): Shared,
    super::extract::QueryParams(query): super::extract::QueryParams<VerifyBody>,
) -> ApiResult<Json<serde_json::Value>> {
    let user = state.identity.verify_email(&query.token).await?;
    Ok(Json(
        json!({ "detail": "Email verified.", "user": PublicUser::from(user) }),
    ))
}

/// `POST .../verify-email/request` (better-auth: `send-verification-email`): a new link for the
/// signed-in caller. 202 when a mail goes out, 200 when the address is verified already.
pub async fn request_verification(State(state): Shared, caller: UserCaller) -> ApiResult<Response> {
    if state
        .identity
        .request_email_verification(&caller.user_id)
        .await?
    {
        Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "detail": "A verification link has been sent." })),
        )
            .into_response())
    } else {
        Ok(Json(json!({ "detail": "This email address is verified already." })).into_response())
    }
}

pub async fn health(State(state): Shared) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(json!({ "status": "healthy", "database": "ok" })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "auth health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unhealthy", "database": "unreachable" })),
            )
                .into_response()
        }
    }
}

/// Google sends `credential` from its button, native SDKs an `id_token`; Apple an
/// `identity_token` (and the user's name, on the first sign-in only).
#[derive(Deserialize)]
pub struct ProviderBody {
    #[serde(
        alias = "credential",
        alias = "identity_token",
        alias = "identityToken",
        alias = "idToken"
    )]
    id_token: String,
    #[serde(alias = "full_name")]
    name: Option<String>,
    /// The nonce the app started the sign-in with; when sent, the token must carry it.
    #[serde(alias = "rawNonce", alias = "raw_nonce")]
    nonce: Option<String>,
}

/// `POST .../oauth/{provider}`: `google` or `apple`.
pub async fn sign_in_with(
    State(state): Shared,
    Path(provider): Path<String>,
    client: ClientInfo,
    JsonBody(body): JsonBody<ProviderBody>,
) -> ApiResult<Response> {
    let provider = SignInProvider::from_name(&provider).ok_or_else(ApiError::not_found)?;
    let pair = state
        .identity
        .sign_in_with(provider, &body.id_token, (body.name, body.nonce), &client)
        .await?;
    Ok(Json(pair).into_response())
}
