//! Account flows: register, log in (password, Google, Apple), refresh, log out, change and
//! reset a password, update a profile, delete a user. Handlers in `api::auth` only parse and
//! call these.

use chrono::Utc;
use serde::Serialize;

use super::mailer::Mail;
use super::oidc::{IdentityClaims, OidcError, OidcVerifier, SignInProvider};
use super::{password, tokens, AuthError, Identity};
use crate::context::{Principal, Role};
use crate::error::GatewayError;
use crate::store::sessions::{NewSession, Rotation};
use crate::store::users::{NewUser, ProfileUpdate, User};
use crate::store::StoreError;

/// Passwords longer than this are refused: argon2 over megabytes would be a cheap DoS.
const MAX_PASSWORD_BYTES: usize = 1024;
const RESET_PREFIX: &str = "reset-password:";
const VERIFY_PREFIX: &str = "verify-email:";
/// How long an address-verification link works.
const VERIFY_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A login's tokens, as every seed's login answers (a superset of their shapes).
#[derive(Debug, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
    pub user: PublicUser,
}

/// A user as the API shows them. The name goes out under each seed's field name.
#[derive(Debug, Serialize)]
pub struct PublicUser {
    pub id: String,
    pub email: String,
    pub username: Option<String>,
    pub name: String,
    pub full_name: String,
    pub display_name: String,
    pub image: Option<String>,
    pub role: &'static str,
    pub email_verified: bool,
    pub created_at: chrono::DateTime<Utc>,
    pub updated_at: chrono::DateTime<Utc>,
}

impl From<User> for PublicUser {
    fn from(user: User) -> Self {
        PublicUser {
            role: Role::from_db(user.role.as_deref()).as_str(),
            full_name: user.name.clone(),
            display_name: user.name.clone(),
            name: user.name,
            id: user.id,
            email: user.email,
            username: user.username,
            image: user.image,
            email_verified: user.email_verified,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

pub struct Registration {
    pub email: String,
    pub password: String,
    pub username: Option<String>,
    pub name: Option<String>,
}

/// Where a request came from, kept with the session (as better-auth does).
#[derive(Default, Clone)]
pub struct ClientInfo {
    pub address: Option<String>,
    pub user_agent: Option<String>,
}

/// The instant `ttl` from now, as stored.
fn expires_after(ttl: std::time::Duration) -> Result<chrono::DateTime<Utc>, GatewayError> {
    let ttl = chrono::Duration::from_std(ttl).map_err(GatewayError::unexpected)?;
    Ok(crate::store::now() + ttl)
}

pub fn normalize_email(email: &str) -> Result<String, GatewayError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Ok(email)
    } else {
        Err(GatewayError::invalid_field(
            "email",
            "is not a valid email address",
        ))
    }
}

pub fn normalize_username(username: &str) -> Result<String, GatewayError> {
    let username = username.trim().to_lowercase();
    let valid = (3..=32).contains(&username.len())
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && !username.contains('@');
    if valid {
        Ok(username)
    } else {
        Err(GatewayError::invalid_field(
            "username",
            "must be 3 to 32 letters, digits, '_', '.' or '-'",
        ))
    }
}

impl Identity {
    fn check_new_password(&self, password: &str) -> Result<(), GatewayError> {
        if password.chars().count() < self.config.min_password_length {
            return Err(GatewayError::invalid_field(
                "password",
                format!(
                    "must be at least {} characters",
                    self.config.min_password_length
                ),
            ));
        }
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(GatewayError::invalid_field(
                "password",
                format!("must be at most {MAX_PASSWORD_BYTES} bytes"),
            ));
        }
        Ok(())
    }

    /// Creates a user with a password. `role` is "admin" only from the CLI.
    pub async fn create_user(
        &self,
        registration: Registration,
        role: Role,
    ) -> Result<User, GatewayError> {
        let email = normalize_email(&registration.email)?;
        let username = registration
            .username
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .map(normalize_username)
            .transpose()?;
        self.check_new_password(&registration.password)?;
        let name = registration
            .name
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .or_else(|| username.clone())
            .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_string());
        if name.chars().count() > 200 {
            return Err(GatewayError::invalid_field(
                "name",
                "must be at most 200 characters",
            ));
        }
        // A taken email or username is told before any hashing: a duplicate costs one lookup,
        // not 19 MiB and a core. The insert still catches two sign-ups racing.
        let taken = self.store.user_by_email(&email).await?.is_some()
            || match &username {
                Some(u) => self.store.user_for_login(u).await?.is_some(),
                None => false,
            };
        if taken {
            return Err(taken_error());
        }
        let permit = self.hashing.permit().await?;
        let hash = password::hash(permit, registration.password)
            .await
            .map_err(GatewayError::unexpected)?;
        let new = NewUser {
            email: &email,
            username: username.as_deref(),
            name: &name,
            role: role.as_str(),
            email_verified: false,
            image: None,
        };
        match self.store.create_user(&new, Some(&hash), None).await {
            Ok(user) => Ok(user),
            Err(StoreError::Conflict) => Err(taken_error()),
            Err(e) => Err(e.into()),
        }
    }

    /// Open sign-up (when `auth.allow_registration`), at most
    /// `registrations_per_address_per_hour` attempts per client address. With mail configured
    /// the new address is sent a verification link.
    pub async fn register(
        &self,
        registration: Registration,
        client: &ClientInfo,
    ) -> Result<TokenPair, GatewayError> {
        if !self.config.allow_registration {
            return Err(GatewayError::forbidden("Registration is closed."));
        }
        if let Some(address) = &client.address {
            let key = format!("register:{address}");
            self.register_throttle
                .attempt(&key)
                .await
                .map_err(AuthError::Throttled)?;
        }
        let user = self.create_user(registration, Role::User).await?;
        if self.mailer.available() {
            if let Err(e) = self.send_verification(&user) {
                tracing::warn!(error = %e.message, "no verification mail for a new account");
            }
        }
        self.start_session(user, client).await
    }

    /// Password login by email or username. Throttled per account and per client address;
    /// the same error and (thanks to the dummy hash) the same time for a wrong password and an
    /// unknown account.
    pub async fn login(
        &self,
        login: &str,
        password: String,
        client: &ClientInfo,
    ) -> Result<TokenPair, GatewayError> {
        let login = login.trim().to_lowercase();
        if login.is_empty() {
            return Err(GatewayError::invalid_field("email", "is required"));
        }
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(AuthError::InvalidCredentials.into());
        }
        let found = self.store.user_for_login(&login).await?;
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), hash),
            None => (None, None),
        };
        // One bucket per account, whichever name (email or username) it is guessed by.
        let account_key = match &user {
            Some(user) => format!("login:user:{}", user.id),
            None => format!("login:{login}"),
        };
        // Counted before the slow verify, in the same step as the check, so guesses sent at
        // once cannot all pass it; a correct password clears the count again.
        self.throttle
            .attempt(&account_key)
            .await
            .map_err(AuthError::Throttled)?;
        let address_key = client.address.as_deref().map(|a| format!("ip:{a}"));
        if let Some(key) = &address_key {
            // Behind a shared address (a NAT, an office) an attacker must not lock everyone
            // out: a busy address is slowed down, never refused.
            if self.address_throttle.check(key).await.is_err() {
                tokio::time::sleep(self.config.login_address_delay).await;
            }
        }
        let permit = self.hashing.permit().await?;
        let ok = password::verify(permit, password, hash).await;
        match user {
            Some(user) if ok && !user.is_banned() => {
                self.throttle.record_success(&account_key).await;
                self.start_session(user, client).await
            }
            _ => {
                if let Some(key) = &address_key {
                    self.address_throttle.record_failure(key).await;
                }
                Err(AuthError::InvalidCredentials.into())
            }
        }
    }

    /// A new session with its first access and refresh tokens.
    pub async fn start_session(
        &self,
        user: User,
        client: &ClientInfo,
    ) -> Result<TokenPair, GatewayError> {
        let expires_at = expires_after(self.config.refresh_ttl)?;
        let placeholder = tokens::token_hash(&tokens::opaque_token(""));
        let session_id = self
            .store
            .create_session(&NewSession {
                user_id: &user.id,
                token_hash: &placeholder,
                expires_at,
                ip_address: client.address.as_deref(),
                user_agent: client.user_agent.as_deref(),
            })
            .await?;
        let refresh = tokens::opaque_token("rt_");
        self.store
            .add_refresh_token(
                &session_id,
                &user.id,
                &tokens::token_hash(&refresh),
                expires_at,
            )
            .await?;
        self.token_pair(user, &session_id, refresh)
    }

    fn token_pair(
        &self,
        user: User,
        session_id: &str,
        refresh: String,
    ) -> Result<TokenPair, GatewayError> {
        let role = Role::from_db(user.role.as_deref());
        let access = self
            .jwt
            .issue(&user.id, session_id, role.as_str())
            .map_err(GatewayError::unexpected)?;
        Ok(TokenPair {
            access_token: access,
            token_type: "bearer",
            expires_in: self.jwt.ttl().as_secs(),
            refresh_token: refresh,
            user: user.into(),
        })
    }

    /// Swaps a refresh token for a new pair. A token already swapped once ends its session.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, GatewayError> {
        let next = tokens::opaque_token("rt_");
        let next_expires_at = expires_after(self.config.refresh_ttl)?;
        let rotation = self
            .store
            .rotate_refresh_token(
                &tokens::token_hash(refresh_token.trim()),
                &tokens::token_hash(&next),
                next_expires_at,
            )
            .await?;
        match rotation {
            Rotation::Rotated { owner } if !owner.user.is_banned() => {
                let session_id = owner.session_id.clone();
                self.token_pair(owner.user, &session_id, next)
            }
            Rotation::Rotated { .. } | Rotation::Invalid => Err(AuthError::InvalidToken.into()),
            Rotation::Reused { session_id } => {
                tracing::warn!(session = %session_id, "a used refresh token was presented again; the session is ended");
                self.forget_sessions(std::slice::from_ref(&session_id));
                Err(AuthError::InvalidToken.into())
            }
        }
    }

    /// Ends the caller's session (from its access token), or the session of a refresh token.
    pub async fn logout(
        &self,
        principal: Option<&Principal>,
        refresh_token: Option<&str>,
    ) -> Result<(), GatewayError> {
        let target = match (principal, refresh_token) {
            (Some(p), _) if p.session_id.is_some() => p
                .session_id
                .as_deref()
                .map(|s| (s.to_string(), p.id.to_string())),
            (_, Some(token)) => {
                self.store
                    .session_of_refresh_token(&tokens::token_hash(token.trim()))
                    .await?
            }
            _ => None,
        };
        let Some((session_id, user_id)) = target else {
            return Err(AuthError::InvalidToken.into());
        };
        self.store.delete_session(&session_id, &user_id).await?;
        self.forget_sessions(&[session_id]);
        Ok(())
    }

    pub async fn change_password(
        &self,
        principal: &Principal,
        current: String,
        new: String,
    ) -> Result<(), GatewayError> {
        let user_id = principal
            .user_id()
            .ok_or(GatewayError::forbidden("The master key has no password."))?;
        let key = format!("password:{user_id}");
        self.throttle
            .attempt(&key)
            .await
            .map_err(AuthError::Throttled)?;
        let hash = self.store.password_hash(user_id).await?;
        let permit = self.hashing.permit().await?;
        if !password::verify(permit, current, hash).await {
            return Err(AuthError::InvalidCredentials.into());
        }
        self.throttle.record_success(&key).await;
        self.check_new_password(&new)?;
        let permit = self.hashing.permit().await?;
        let hash = password::hash(permit, new)
            .await
            .map_err(GatewayError::unexpected)?;
        self.store.set_password(user_id, &hash).await?;
        // Every other session ends; the one changing the password stays signed in.
        let ended = self
            .store
            .delete_user_sessions(user_id, principal.session_id.as_deref())
            .await?;
        self.forget_sessions(&ended);
        Ok(())
    }

    /// Mails a reset link when the email has an account. The caller answers the same either
    /// way, and the token is stored and the mail sent on their own task, so the answer takes
    /// as long either way too (one lookup). At most `login_max_failures` mails go to one
    /// address per window: more are dropped silently, so the endpoint cannot flood a mailbox.
    /// With nowhere to send a mail (no `[smtp]`, no `auth.log_mails`) it is a 503 for everyone.
    pub async fn request_password_reset(
        &self,
        email: &str,
        client: &ClientInfo,
    ) -> Result<(), GatewayError> {
        if !self.mailer.available() {
            return Err(mail_unavailable("Password reset"));
        }
        let email = normalize_email(email)?;
        if let Some(address) = &client.address {
            let key = format!("reset:ip:{address}");
            self.reset_throttle
                .attempt(&key)
                .await
                .map_err(AuthError::Throttled)?;
        }
        let Some(user) = self.store.user_by_email(&email).await? else {
            return Ok(());
        };
        let throttle_key = format!("reset:{email}");
        if self.throttle.attempt(&throttle_key).await.is_err() {
            return Ok(());
        }
        let minutes = self.config.password_reset_ttl.as_secs() / 60;
        self.mail_token(
            &user,
            RESET_PREFIX,
            self.config.password_reset_ttl,
            self.config.reset_url.as_deref(),
            |link| Mail {
                to: user.email.clone(),
                subject: "Reset your password".into(),
                body: format!(
                    "Someone asked to reset the password of this account.\r\n\r\nReset it with: {link}\r\n\r\nThis expires in {minutes} minutes. Resetting signs out every session and revokes every API key of the account. If it was not you, ignore this mail.\r\n"
                ),
            },
        )
    }

    /// Makes a one-time token for `user` (stored hashed under `prefix`), and mails `mail(link)`
    /// on its own task once the token is stored: no mail whose link would not work. `url`
    /// makes the link, `{token}` replaced; without it the link is the bare token.
    fn mail_token(
        &self,
        user: &User,
        prefix: &str,
        ttl: std::time::Duration,
        url: Option<&str>,
        mail: impl FnOnce(&str) -> Mail,
    ) -> Result<(), GatewayError> {
        let token = tokens::opaque_token("");
        let expires_at = expires_after(ttl)?;
        let token_key = format!("{prefix}{}", tokens::token_hash(&token));
        let link = match url {
            Some(url) => url.replace("{token}", &token),
            None => token,
        };
        let mail = mail(&link);
        let (store, mailer, user_id) = (self.store.clone(), self.mailer.clone(), user.id.clone());
        tokio::spawn(async move {
            if let Err(e) = store
                .create_verification(&token_key, &user_id, expires_at)
                .await
            {
                tracing::error!(error = %e, subject = %mail.subject, "storing a mailed token failed; no mail sent");
                return;
            }
            let subject = mail.subject.clone();
            if let Err(e) = mailer.send(mail).await {
                tracing::error!(error = %format!("{e:#}"), subject = %subject, "sending a mail failed");
            }
        });
        Ok(())
    }

    /// Sets a new password with a reset token (once), ends every session of the user and
    /// revokes their API keys: whoever held the account before the reset keeps nothing.
    pub async fn reset_password(&self, token: &str, new: String) -> Result<(), GatewayError> {
        self.check_new_password(&new)?;
        let identifier = format!("{RESET_PREFIX}{}", tokens::token_hash(token.trim()));
        let user_id = self
            .store
            .take_verification(&identifier)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        let permit = self.hashing.permit().await?;
        let hash = password::hash(permit, new)
            .await
            .map_err(GatewayError::unexpected)?;
        self.store.set_password(&user_id, &hash).await?;
        let ended = self.store.delete_user_sessions(&user_id, None).await?;
        self.forget_sessions(&ended);
        for hash in self.store.revoke_user_api_keys(&user_id).await? {
            self.forget_key(&hash);
        }
        Ok(())
    }

    /// Mails `user` a link that verifies their address (stored, then sent, on its own task).
    fn send_verification(&self, user: &User) -> Result<(), GatewayError> {
        if !self.mailer.available() {
            return Err(mail_unavailable("Email verification"));
        }
        self.mail_token(
            user,
            VERIFY_PREFIX,
            VERIFY_TTL,
            self.config.verify_email_url.as_deref(),
            |link| Mail {
                to: user.email.clone(),
                subject: "Verify your email address".into(),
                body: format!(
                    "Confirm that this address is yours with: {link}\r\n\r\nThis expires in 24 hours. If you did not sign up, ignore this mail.\r\n"
                ),
            },
        )
    }

    /// A new verification link for the caller (nothing when already verified). At most
    /// `login_max_failures` mails per account per lock-out window.
    pub async fn request_email_verification(&self, user_id: &str) -> Result<bool, GatewayError> {
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        if user.email_verified {
            return Ok(false);
        }
        let key = format!("verify:{user_id}");
        self.throttle
            .attempt(&key)
            .await
            .map_err(AuthError::Throttled)?;
        self.send_verification(&user)?;
        Ok(true)
    }

    /// Marks the address of a verification token's user verified (each token works once).
    pub async fn verify_email(&self, token: &str) -> Result<User, GatewayError> {
        let identifier = format!("{VERIFY_PREFIX}{}", tokens::token_hash(token.trim()));
        let user_id = self
            .store
            .take_verification(&identifier)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        self.store.set_email_verified(&user_id).await?;
        self.store
            .user_by_id(&user_id)
            .await?
            .ok_or(AuthError::InvalidToken.into())
    }

    pub async fn update_profile(
        &self,
        user_id: &str,
        update: ProfileUpdate<'_>,
    ) -> Result<User, GatewayError> {
        if let Some(name) = update.name {
            if name.trim().is_empty() || name.chars().count() > 200 {
                return Err(GatewayError::invalid_field(
                    "name",
                    "must be 1 to 200 characters",
                ));
            }
        }
        let username = match update.username {
            Some(Some(u)) => Some(Some(normalize_username(u)?)),
            Some(None) => Some(None),
            None => None,
        };
        let update = ProfileUpdate {
            name: update.name.map(str::trim),
            username: username.as_ref().map(|u| u.as_deref()),
            image: update.image,
        };
        match self.store.update_profile(user_id, &update).await {
            Ok(Some(user)) => Ok(user),
            Ok(None) => Err(GatewayError::resource_not_found()),
            Err(StoreError::Conflict) => Err(GatewayError::conflict("This username is taken.")),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a user with all their data, and forgets their cached sessions and keys.
    pub async fn delete_user(&self, user_id: &str) -> Result<(), GatewayError> {
        let sessions = self.store.session_ids_of_user(user_id).await?;
        let keys = self.store.api_key_hashes_of_user(user_id).await?;
        if !self.store.delete_user(user_id).await? {
            return Err(GatewayError::resource_not_found());
        }
        self.forget_sessions(&sessions);
        for hash in keys {
            self.forget_key(&hash);
        }
        Ok(())
    }

    /// Google or Apple sign-in: verify the ID token, then find the linked user, or link the
    /// account to the user with the same verified email, or create a user.
    pub async fn sign_in_with(
        &self,
        provider: SignInProvider,
        id_token: &str,
        (name, nonce): (Option<String>, Option<String>),
        client: &ClientInfo,
    ) -> Result<TokenPair, GatewayError> {
        let verifier: &OidcVerifier = match provider {
            SignInProvider::Google => self.google.as_ref(),
            SignInProvider::Apple => self.apple.as_ref(),
        }
        .ok_or(GatewayError::forbidden(
            "This sign-in provider is not configured.",
        ))?;
        let provider = provider.as_str();
        let claims = verifier.verify(id_token).await.map_err(|e| match e {
            OidcError::Invalid(reason) => {
                tracing::info!(provider, reason = %reason, "ID token refused");
                AuthError::InvalidToken.into()
            }
            OidcError::Unavailable(reason) => GatewayError::service_unavailable(format!(
                "{provider} sign-in is unavailable right now: {reason}"
            )),
            OidcError::NotConfigured => {
                GatewayError::forbidden("This sign-in provider is not configured.")
            }
        })?;
        // Checked when the app sends one: a token made for another sign-in does not work here.
        if let Some(nonce) = nonce.as_deref().filter(|n| !n.is_empty()) {
            if !claims.nonce_matches(nonce) {
                tracing::info!(
                    provider,
                    "ID token refused: its nonce is not this sign-in's"
                );
                return Err(AuthError::InvalidToken.into());
            }
        }
        let user = self.user_for_provider(provider, &claims, name).await?;
        if user.is_banned() {
            return Err(AuthError::InvalidCredentials.into());
        }
        self.start_session(user, client).await
    }

    async fn user_for_provider(
        &self,
        provider: &'static str,
        claims: &IdentityClaims,
        name: Option<String>,
    ) -> Result<User, GatewayError> {
        if let Some(user) = self
            .store
            .user_by_provider_account(provider, &claims.subject)
            .await?
        {
            return Ok(user);
        }
        let email = claims
            .email
            .as_deref()
            .ok_or(GatewayError::invalid_field("id_token", "carries no email"))
            .and_then(normalize_email)?;
        if let Some(user) = self.store.user_by_email(&email).await? {
            // Linking by email is safe only when the provider vouches for the address.
            if !claims.email_verified {
                return Err(GatewayError::conflict(
                    "An account with this email exists; sign in with its password first.",
                ));
            }
            // An account whose address was never verified may have been registered by anyone
            // (a squatter waiting for the owner): the provider's word proves ownership, so
            // whatever else opened the account (its password, sessions, API keys) ends first.
            let user = if user.email_verified {
                user
            } else {
                self.reclaim(&user).await?
            };
            match self
                .store
                .link_provider_account(&user.id, provider, &claims.subject)
                .await
            {
                Ok(()) | Err(StoreError::Conflict) => return Ok(user),
                Err(e) => return Err(e.into()),
            }
        }
        self.create_provider_user(provider, claims, &email, name)
            .await
    }

    /// Ends every other credential of an unverified account before a provider takes it over,
    /// and marks its address verified.
    async fn reclaim(&self, user: &User) -> Result<User, GatewayError> {
        let ended = self.store.reclaim_unverified_account(&user.id).await?;
        self.forget_sessions(&ended.sessions);
        for hash in &ended.key_hashes {
            self.forget_key(hash);
        }
        tracing::info!(
            user = %user.id,
            sessions = ended.sessions.len(),
            api_keys = ended.key_hashes.len(),
            "an unverified account was claimed by a verified sign-in; its password, sessions and API keys were ended"
        );
        Ok(User {
            email_verified: true,
            ..user.clone()
        })
    }

    async fn create_provider_user(
        &self,
        provider: &'static str,
        claims: &IdentityClaims,
        email: &str,
        name: Option<String>,
    ) -> Result<User, GatewayError> {
        let name = name
            .or_else(|| claims.name.clone())
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_string());
        let new = NewUser {
            email,
            username: None,
            name: name.trim(),
            role: Role::User.as_str(),
            email_verified: claims.email_verified,
            image: claims.picture.as_deref(),
        };
        match self
            .store
            .create_user(&new, None, Some((provider, &claims.subject)))
            .await
        {
            Ok(user) => Ok(user),
            // Two first sign-ins at once: the other one created the user.
            Err(StoreError::Conflict) => self
                .store
                .user_by_provider_account(provider, &claims.subject)
                .await?
                .ok_or(GatewayError::conflict(
                    "An account with this email already exists.",
                )),
            Err(e) => Err(e.into()),
        }
    }
}

fn taken_error() -> GatewayError {
    GatewayError::conflict("An account with this email or username already exists.")
}

fn mail_unavailable(what: &str) -> GatewayError {
    GatewayError::service_unavailable(format!(
        "{what} by mail is not available: this server has no mail configured ([smtp])."
    ))
    .with_code("mail_unavailable")
}
